"""``lockstep explain``: which factor makes two runs' results differ.

Starting from A's recipe, swap in one differing factor of B at a time (code,
data, params, seed, environment variables and determinism settings), rerun,
and see whether the result stays A's, becomes B's, or neither. Reruns are
cached by the digest of their recipe, so nothing runs twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from lockstep.core.records import RunRecord
from lockstep.core.status import RunStatus
from lockstep.reproduce.compare import Tolerance, Verdict
from lockstep.reproduce.diff import diff_runs
from lockstep.reproduce.recipe import Recipe
from lockstep.reproduce.rerun import RerunOptions, run_recipe
from lockstep.reproduce.verify import compare
from lockstep.tracking.history import history_reader
from lockstep.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class FactorResult:
    factor: str
    description: str
    run: str  # the hybrid run's id
    reproduces: str  # "A", "B" or "neither"
    cached: bool


@dataclass(frozen=True, kw_only=True)
class Explanation:
    verdict: Verdict  # A against B
    factors: list[FactorResult] = field(default_factory=list)
    baseline: str = ""  # does A reproduce itself?
    not_swappable: list[str] = field(default_factory=list)
    conclusion: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "baseline": self.baseline,
            "factors": [vars(f) for f in self.factors],
            "not_swappable": self.not_swappable,
            "conclusion": self.conclusion,
        }


def _describe(factor: str, differences: Mapping[str, Any], a: Recipe, b: Recipe) -> str:
    if factor == "data":
        data = differences.get("data", {})
        parts = [
            f"{x['path']} {kind}"
            for kind in ("modified", "added", "removed")
            for x in data.get(kind, [])
        ]
        return ", ".join(parts) or "inputs differ"
    if factor == "code":
        code = differences.get("code", {})
        files = code.get("modified", []) + code.get("added", []) + code.get("removed", [])
        return (", ".join(files) + " changed") if files else "code differs"
    if factor == "params":
        if a.argv != b.argv:
            return f"command {' '.join(a.argv)!r} -> {' '.join(b.argv)!r}"
        changed = [
            k for k in a.params.keys() | b.params.keys() if a.params.get(k) != b.params.get(k)
        ]
        return "params " + ", ".join(sorted(changed))
    if factor == "seed":
        return f"seed {a.seed} -> {b.seed}"
    changed = sorted(
        k
        for k in a.variables.keys() | b.variables.keys()
        if a.variables.get(k) != b.variables.get(k)
    )
    if a.deterministic != b.deterministic:
        changed.append("--deterministic")
    return ", ".join(changed)


def _cached_run(workspace: Workspace, recipe: Recipe, packages: Any) -> RunRecord | None:
    """The newest finished run of this very recipe made under this environment, if any.

    A run of the same recipe under other variables or other packages is not the same
    experiment: it is never reused (it would pass a leaked variable off as A's result).
    """
    digest = recipe.digest()
    for listed in workspace.meta.search(where=_tag_filter("lockstep.recipe", digest), limit=5):
        if listed.status is not RunStatus.FINISHED:
            continue
        record = workspace.meta.get_run(listed.id)  # listings carry no sections
        environment = record.sections.get("environment", {})
        variables = {
            k: v for k, v in environment.get("variables", {}).items() if k != "PYTHONHASHSEED"
        }
        if variables != recipe.variables or _package_pins(environment) != packages:
            continue
        return record
    return None


def _package_pins(environment: Mapping[str, Any]) -> Any:
    packages = environment.get("packages")
    if not isinstance(packages, list):
        return None
    return sorted((p.get("name"), p.get("version")) for p in packages if isinstance(p, dict))


def _differed(comparison: Any) -> str:
    names = [f"{f.kind} {f.name}" for f in comparison.differences() if f.status == "differs"]
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _tag_filter(key: str, value: str) -> Any:
    from lockstep.core.query import Compare, Field

    return Compare(field=Field(namespace="tags", key=key), op="=", values=(value,))


# How many explanations a run keeps (the newest).
MAX_EXPLANATIONS = 20


def record_explanation(
    workspace: Workspace, a: RunRecord, b: RunRecord, found: Explanation
) -> None:
    """Keep the explanation in A's record (section ``explanations``), so the hub's
    compare view shows it beside the two runs."""
    import time

    kept = a.sections.get("explanations")
    history = list(kept) if isinstance(kept, list) else []
    history.append(
        {"against": b.id, "against_name": b.name, "time": time.time(), **found.to_json()}
    )
    workspace.meta.set_sections(a.id, {"explanations": history[-MAX_EXPLANATIONS:]})


def explain(
    workspace: Workspace,
    a: RunRecord,
    b: RunRecord,
    *,
    tolerance: Tolerance,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    notify: Callable[[str], None] = lambda _message: None,
) -> Explanation:
    """Which factor makes A's result differ from B's; the answer is kept in A's record."""
    found = _explain(
        workspace,
        a,
        b,
        tolerance=tolerance,
        environ=environ,
        stdout=stdout,
        stderr=stderr,
        notify=notify,
    )
    record_explanation(workspace, workspace.meta.get_run(a.id), b, found)
    return found


def _explain(
    workspace: Workspace,
    a: RunRecord,
    b: RunRecord,
    *,
    tolerance: Tolerance,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    notify: Callable[[str], None],
) -> Explanation:
    meta = workspace.meta
    verdict = compare(workspace, a, b, tolerance).verdict
    if verdict is Verdict.UNVERIFIABLE:
        return Explanation(
            verdict=verdict,
            conclusion="neither run logged a metric, wrote an output or printed anything: there "
            "is no result to explain; record one (log a metric, write or print the result)",
        )
    if verdict is not Verdict.NOT_REPRODUCED:
        return Explanation(
            verdict=verdict, conclusion=f"A and B agree ({verdict}): there is nothing to explain"
        )
    from lockstep.capture.packages import installed_distributions

    packages_here = _package_pins({"packages": installed_distributions()})
    recipe_a, recipe_b = Recipe.from_record(a), Recipe.from_record(b)
    differences = diff_runs(
        a,
        b,
        objects=workspace.objects,
        history=history_reader(meta),
    )
    not_swappable = [
        f"{dimension} differ and cannot be swapped here"
        for dimension in ("environment", "hardware")
        if dimension in differences
        and (dimension == "hardware" or set(differences["environment"]) - {"variables"})
    ]

    def run(recipe: Recipe, label: str) -> tuple[RunRecord, bool]:
        cached = _cached_run(workspace, recipe, packages_here)
        if cached is not None:
            notify(f"{label}: cached run {cached.name}")
            return cached, True
        notify(f"{label}: running")
        result, _ = run_recipe(
            workspace,
            recipe,
            experiment=a.experiment,
            options=RerunOptions(),
            environ=environ,
            stdout=stdout,
            stderr=stderr,
            extra_tags={"explain_of": f"{a.id}:{b.id}"},
        )
        return meta.get_run(result.run_id), False

    baseline_run, _ = run(recipe_a, "A as recorded")
    baseline_comparison = compare(workspace, a, baseline_run, tolerance)
    baseline_ok = baseline_comparison.verdict is not Verdict.NOT_REPRODUCED
    if baseline_ok:
        baseline = "A reproduces itself"
    elif baseline_comparison.status.status == "differs":
        baseline = (
            f"A's rerun did not end as A did ({baseline_comparison.status.detail}): "
            "fix that first; factors cannot be blamed while the rerun itself fails"
        )
    else:
        baseline = (
            f"A does not reproduce itself (its rerun differs in {_differed(baseline_comparison)}):"
            " the run is nondeterministic, so single factors cannot be blamed reliably "
            "(see `lockstep audit`)"
        )
    results: list[FactorResult] = []
    for factor in recipe_a.differing(recipe_b):
        hybrid = recipe_a.with_factor(factor, recipe_b)
        record, cached = run(hybrid, f"A with B's {factor}")
        like_a = compare(workspace, a, record, tolerance).verdict is not Verdict.NOT_REPRODUCED
        like_b = compare(workspace, b, record, tolerance).verdict is not Verdict.NOT_REPRODUCED
        reproduces = "B" if like_b else "A" if like_a else "neither"
        results.append(
            FactorResult(
                factor=factor,
                description=_describe(factor, differences, recipe_a, recipe_b),
                run=record.id,
                reproduces=reproduces,
                cached=cached,
            )
        )
    causes = [r for r in results if r.reproduces != "A"]
    if not results:
        conclusion = (
            ("no swappable factor differs: " + "; ".join(not_swappable))
            if not_swappable
            else "the recorded inputs are the same: the difference is nondeterminism"
        )
    elif causes:
        conclusion = "; ".join(f"{r.factor}: {r.description}" for r in causes)
    else:
        conclusion = "no single factor changes A's result; the factors act together" + (
            "; " + "; ".join(not_swappable) if not_swappable else ""
        )
    return Explanation(
        verdict=verdict,
        factors=results,
        baseline=baseline,
        not_swappable=not_swappable,
        conclusion=conclusion,
    )

"""``lockstep verify``: rerun a run (or take another) and judge whether the result reproduced."""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from lockstep.core.records import RunRecord
from lockstep.core.status import RunStatus
from lockstep.errors import UsageError
from lockstep.reproduce.compare import Comparison, Tolerance, compare_runs, tolerance_from_pyproject
from lockstep.reproduce.recipe import Recipe
from lockstep.reproduce.rerun import RerunOptions, rerun, run_recipe
from lockstep.tracking.history import history_reader
from lockstep.workspace import Workspace

MAX_HISTORY = 50


REPRODUCTION, COMPARISON = "reproduction", "comparison"


@dataclass(frozen=True, kw_only=True)
class Verification:
    run: RunRecord
    other: RunRecord
    comparison: Comparison
    # "reproduction": run against a fresh rerun of itself; "comparison": against another run.
    kind: str = REPRODUCTION
    seed_noise: dict[str, dict[str, Any]] | None = None
    seed_notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {
            "run": self.run.id,
            "against": self.other.id,
            "kind": self.kind,
            **self.comparison.to_json(),
        }
        if self.seed_noise is not None:
            out["seed_noise"] = self.seed_noise
            out["seed_notes"] = self.seed_notes
        return out


def load_tolerance(
    project_root: Path, rtol: float | None, atol: float | None, per_key: Mapping[str, float]
) -> Tolerance:
    """Flags win over ``[tool.lockstep.verify]`` in pyproject.toml, which wins over defaults."""
    table: dict[str, Any] = {}
    pyproject = project_root / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tolerance_from_pyproject(pyproject.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"cannot read [tool.lockstep.verify] in {pyproject}: {exc}") from None
    base = Tolerance()
    masks = table.get("mask", [])
    if isinstance(masks, str):
        masks = [masks]
    if not isinstance(masks, list) or not all(isinstance(m, str) for m in masks):
        raise UsageError(
            f"[tool.lockstep.verify] mask in {pyproject} must be a list of regular expressions"
        )
    for mask in masks:
        try:
            re.compile(mask)
        except re.error as exc:
            raise UsageError(
                f"[tool.lockstep.verify] mask {mask!r} in {pyproject} is not a regular "
                f"expression: {exc}"
            ) from None
    try:
        tolerance = Tolerance(
            rtol=float(rtol if rtol is not None else table.get("rtol", base.rtol)),
            atol=float(atol if atol is not None else table.get("atol", base.atol)),
            per_key={**{k: float(v) for k, v in table.get("tol", {}).items()}, **per_key},
            masks=tuple(masks),
        )
    except (TypeError, ValueError, AttributeError):
        raise UsageError(
            f"[tool.lockstep.verify] in {pyproject}: rtol, atol and tol values must be numbers"
        ) from None
    for name, value in (
        ("rtol", tolerance.rtol),
        ("atol", tolerance.atol),
        *tolerance.per_key.items(),
    ):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"tolerance {name} must be a finite number >= 0, not {value}")
    return tolerance


def compare(workspace: Workspace, a: RunRecord, b: RunRecord, tolerance: Tolerance) -> Comparison:
    meta = workspace.meta
    return compare_runs(
        a,
        b,
        history=history_reader(meta),
        read_object=workspace.objects.read_bytes,
        tolerance=tolerance,
    )


def record_verification(workspace: Workspace, run: RunRecord, verification: Verification) -> None:
    """Keep the verdict in the run's history (what `lockstep report` and `show` present):
    a reproduction of the run and a comparison with another run are different kinds."""
    fresh = workspace.meta.get_run(run.id)
    history = list(fresh.sections.get("verifications", []))
    history.append(
        {
            "kind": verification.kind,
            "time": time.time(),
            "against": verification.other.id,
            "against_name": verification.other.name,
            "verdict": str(verification.comparison.verdict),
            "rtol": verification.comparison.tolerance.rtol,
            "atol": verification.comparison.tolerance.atol,
            "differences": [f.name for f in verification.comparison.differences()][:20],
            # Measured with --seeds: whether every difference is within seed-to-seed noise
            # (what `models alias --require within-noise` accepts); None when not measured.
            "within_noise": _all_within_noise(verification.seed_noise),
        }
    )
    workspace.meta.set_sections(run.id, {"verifications": history[-MAX_HISTORY:]})


def _all_within_noise(noise: dict[str, dict[str, Any]] | None) -> bool | None:
    if not noise:
        return None
    return all(bool(entry.get("within_noise")) for entry in noise.values())


def verify(
    workspace: Workspace,
    run: RunRecord,
    *,
    against: RunRecord | None,
    tolerance: Tolerance,
    seeds: int,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    notify: Callable[[str], None] | None = None,
) -> Verification:
    """Compare run with against, or with a fresh rerun of run; optionally measure seed noise."""
    meta = workspace.meta
    if against is None:
        result = rerun(
            workspace,
            run,
            options=RerunOptions(),
            environ=environ,
            stdout=stdout,
            stderr=stderr,
            notify=notify,
        )
        other = meta.get_run(result.run_id)
    else:
        other = against
    comparison = compare(workspace, run, other, tolerance)
    comparison.notes.extend(outside_input_notes(run, other, rerun_here=against is None))
    noise: dict[str, dict[str, Any]] | None = None
    seed_notes: list[str] = []
    if seeds > 0:
        noise, seed_notes = seed_noise(
            workspace,
            run,
            other,
            seeds,
            tolerance=tolerance,
            environ=environ,
            stdout=stdout,
            stderr=stderr,
        )
    verification = Verification(
        run=run,
        other=other,
        comparison=comparison,
        kind=REPRODUCTION if against is None else COMPARISON,
        seed_noise=noise,
        seed_notes=seed_notes,
    )
    record_verification(workspace, run, verification)
    return verification


def outside_input_notes(run: RunRecord, other: RunRecord, *, rerun_here: bool) -> list[str]:
    """Files read from outside the project are recorded by digest only: name those that changed
    (since the run, for a rerun here; between the two runs, for a comparison)."""
    from lockstep.reproduce.outside import changed_outside

    return [f"likely cause: {note}" for note in changed_outside(run, None if rerun_here else other)]


def script_seeding(run: RunRecord) -> list[dict[str, Any]]:
    """The seeding calls the program made itself (recorded by the bootstrap)."""
    calls = run.sections.get("seed", {}).get("script_calls", [])
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _printed_numbers(
    workspace: Workspace, record: RunRecord, tolerance: Tolerance
) -> tuple[tuple[str, ...], list[float]] | None:
    from lockstep.reproduce.compare import printed_output, run_masks
    from lockstep.reproduce.printed import numbers_in

    data = printed_output(record, "stdout", workspace.objects.read_bytes)
    if not data:
        return None
    return numbers_in(data, run_masks(record, tolerance.masks))


def seed_noise(
    workspace: Workspace,
    run: RunRecord,
    other: RunRecord,
    seeds: int,
    *,
    tolerance: Tolerance,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Rerun with `seeds` other seeds; per compared result (each metric's final value, each
    number the run printed), is |A - B| within seed-to-seed noise? Also says why not judged."""
    notes: list[str] = []
    own = script_seeding(run)
    if own:
        where = ", ".join(f"{c.get('call')}({c.get('value')}) at {c.get('where')}" for c in own[:4])
        notes.append(
            f"the script seeds itself ({where}): lockstep's other seeds do not reach the "
            "generators it reseeds, so seed noise for those is not meaningful"
        )
    recipe = Recipe.from_record(run)
    finals: dict[str, list[float]] = {key: [s.last] for key, s in run.metrics.items()}
    printed = {"stdout": [x] if (x := _printed_numbers(workspace, run, tolerance)) else []}
    for offset in range(1, seeds + 1):
        variant = replace(recipe, seed=(recipe.seed + offset) % (2**31 - 1))
        result, _ = run_recipe(
            workspace,
            variant,
            experiment=run.experiment,
            options=RerunOptions(),
            environ=environ,
            stdout=stdout,
            stderr=stderr,
            extra_tags={"seed_noise_of": run.id},
        )
        record = workspace.meta.get_run(result.run_id)
        if record.status is not RunStatus.FINISHED:
            notes.append(f"the rerun with seed {variant.seed} {record.status}: left out")
            continue
        for key, summary in record.metrics.items():
            finals.setdefault(key, []).append(summary.last)
        if printed["stdout"] and (numbers := _printed_numbers(workspace, record, tolerance)):
            printed["stdout"].append(numbers)
    noise: dict[str, dict[str, Any]] = {}
    for key, values in finals.items():
        if key not in run.metrics or key not in other.metrics:
            continue
        if len(values) < 2:
            notes.append(f"metric {key}: no rerun with another seed logged it")
            continue
        noise[f"metric {key}"] = _noise(values, run.metrics[key].last, other.metrics[key].last)
    noise.update(_printed_noise(workspace, run, other, printed["stdout"], tolerance, notes))
    measured = [v for v in finals.values() if len(v) > 1] + (
        [[tuple(n) for _, n in printed["stdout"]]] if len(printed["stdout"]) > 1 else []
    )
    if not measured:
        notes.append(
            "nothing to measure: the run logged no metric and printed no number "
            "(output files are not measured for seed noise)"
            if not run.metrics and not printed["stdout"]
            else "no rerun with another seed gave a result to set beside the run's"
        )
    elif all(len(set(values)) == 1 for values in measured):
        notes.append(
            "every other seed gave exactly the same results: the seed lockstep gives does not "
            "change this program's results" + (" (it seeds itself)" if own else "")
        )
    return noise, notes


def _noise(values: list[float], a: float, b: float) -> dict[str, Any]:
    spread = statistics.stdev(values)
    difference = abs(a - b)
    return {
        "seed_std": spread,
        "difference": difference,
        "seeds": len(values),
        "within_noise": difference <= 2 * spread,
    }


def _printed_noise(
    workspace: Workspace,
    run: RunRecord,
    other: RunRecord,
    samples: list[tuple[tuple[str, ...], list[float]]],
    tolerance: Tolerance,
    notes: list[str],
) -> dict[str, dict[str, Any]]:
    """Per printed number that differs between A and B: the seed-to-seed spread at its place."""
    if not samples:
        return {}
    mine = samples[0]
    theirs = _printed_numbers(workspace, other, tolerance)
    if theirs is None or theirs[0] != mine[0] or len(theirs[1]) != len(mine[1]):
        if theirs is not None:
            notes.append("stdout: A and B printed different lines, so their numbers do not pair")
        return {}
    same_shape = [s for s in samples if s[0] == mine[0] and len(s[1]) == len(mine[1])]
    if len(same_shape) < 2:
        notes.append("stdout: the reruns with other seeds printed different lines; not measured")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for index, (x, y) in enumerate(zip(mine[1], theirs[1], strict=True)):
        if x == y:
            continue
        values = [s[1][index] for s in same_shape]
        out[f"stdout number {index + 1}"] = _noise(values, x, y)
    if not out:
        notes.append("stdout: A and B printed the same numbers")
    return out

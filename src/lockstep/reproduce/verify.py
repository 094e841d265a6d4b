"""``lockstep verify``: rerun a run (or take another) and judge whether the result reproduced."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from lockstep.core.records import RunRecord
from lockstep.errors import UsageError
from lockstep.reproduce.compare import Comparison, Tolerance, compare_runs, tolerance_from_pyproject
from lockstep.reproduce.recipe import Recipe
from lockstep.reproduce.rerun import RerunOptions, rerun, run_recipe
from lockstep.tracking.history import history_reader
from lockstep.workspace import Workspace

MAX_HISTORY = 50


@dataclass(frozen=True, kw_only=True)
class Verification:
    run: RunRecord
    other: RunRecord
    comparison: Comparison
    seed_noise: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"run": self.run.id, "against": self.other.id, **self.comparison.to_json()}
        if self.seed_noise is not None:
            out["seed_noise"] = self.seed_noise
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
    return Tolerance(
        rtol=float(rtol if rtol is not None else table.get("rtol", base.rtol)),
        atol=float(atol if atol is not None else table.get("atol", base.atol)),
        per_key={**{k: float(v) for k, v in table.get("tol", {}).items()}, **per_key},
    )


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
    """Keep the verdict in the run's history (what `lockstep report` shows)."""
    fresh = workspace.meta.get_run(run.id)
    history = list(fresh.sections.get("verifications", []))
    history.append(
        {
            "time": time.time(),
            "against": verification.other.id,
            "against_name": verification.other.name,
            "verdict": str(verification.comparison.verdict),
            "rtol": verification.comparison.tolerance.rtol,
            "atol": verification.comparison.tolerance.atol,
            "differences": [f.name for f in verification.comparison.differences()][:20],
        }
    )
    workspace.meta.set_sections(run.id, {"verifications": history[-MAX_HISTORY:]})


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
    noise = None
    if seeds > 0:
        noise = seed_noise(
            workspace, run, other, seeds, environ=environ, stdout=stdout, stderr=stderr
        )
    verification = Verification(run=run, other=other, comparison=comparison, seed_noise=noise)
    record_verification(workspace, run, verification)
    return verification


def seed_noise(
    workspace: Workspace,
    run: RunRecord,
    other: RunRecord,
    seeds: int,
    *,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> dict[str, dict[str, Any]]:
    """Rerun with `seeds` other seeds; per metric, is |A - B| within seed-to-seed noise?"""
    recipe = Recipe.from_record(run)
    finals: dict[str, list[float]] = {key: [s.last] for key, s in run.metrics.items()}
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
        for key, summary in workspace.meta.get_run(result.run_id).metrics.items():
            finals.setdefault(key, []).append(summary.last)
    noise: dict[str, dict[str, Any]] = {}
    for key, values in finals.items():
        if key not in run.metrics or key not in other.metrics or len(values) < 2:
            continue
        spread = statistics.stdev(values)
        difference = abs(run.metrics[key].last - other.metrics[key].last)
        noise[key] = {
            "seed_std": spread,
            "difference": difference,
            "seeds": len(values),
            "within_noise": difference <= 2 * spread,
        }
    return noise

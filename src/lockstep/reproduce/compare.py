"""Judge two runs: metric series step by step and outputs bit for bit, then within tolerance.

IDENTICAL: every metric point and every output bitwise equal. REPRODUCED:
everything within tolerance (|a - b| <= atol + rtol * |b|, per-key rtol
overrides). NOT_REPRODUCED: anything beyond, listed largest difference first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from lockstep.core.records import Artifact, RunRecord
from lockstep.reproduce.numeric import read_numeric


class Verdict(StrEnum):
    IDENTICAL = "IDENTICAL"
    REPRODUCED = "REPRODUCED"
    NOT_REPRODUCED = "NOT_REPRODUCED"


IDENTICAL, CLOSE, DIFFERS = "identical", "within_tolerance", "differs"


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    rtol: float = 1e-6
    atol: float = 0.0
    per_key: Mapping[str, float] = field(default_factory=dict)

    def rtol_for(self, key: str) -> float:
        return self.per_key.get(key, self.rtol)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One metric or output of the two runs, and how they compare."""

    kind: str  # "metric" or "artifact"
    name: str
    status: str  # identical / within_tolerance / differs
    a: Any = None
    b: Any = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    first_step: int | None = None  # metrics: the first step whose values are not bitwise equal
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, "")}
        for key in ("a", "b", "max_abs_diff", "max_rel_diff"):
            value = out.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = str(value)
        return out


@dataclass(frozen=True, kw_only=True)
class Comparison:
    verdict: Verdict
    metrics: list[Finding]
    artifacts: list[Finding]
    tolerance: Tolerance

    def differences(self) -> list[Finding]:
        """Everything not identical, the largest relative difference first."""
        found = [f for f in (*self.metrics, *self.artifacts) if f.status != IDENTICAL]
        return sorted(found, key=lambda f: (f.status == CLOSE, -(f.max_rel_diff or math.inf)))

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "tolerance": {
                "rtol": self.tolerance.rtol,
                "atol": self.tolerance.atol,
                "per_key": dict(self.tolerance.per_key),
            },
            "metrics": [f.to_json() for f in self.metrics],
            "artifacts": [f.to_json() for f in self.artifacts],
        }


def _bitwise_equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes())


def _differences(a: Any, b: Any) -> tuple[float, float]:
    """Largest absolute and relative differences (NaN matching NaN counts as equal)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.where(both_nan | same_inf, 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
        scale = np.abs(b)
        rel = np.where(diff == 0, 0.0, diff / np.where(scale == 0, np.inf, scale))
        rel = np.where((diff > 0) & (scale == 0), np.inf, rel)
    return (float(diff.max()) if diff.size else 0.0, float(rel.max()) if rel.size else 0.0)


def _within(a: Any, b: Any, rtol: float, atol: float) -> bool:
    return bool(
        np.allclose(
            np.asarray(a, np.float64),
            np.asarray(b, np.float64),
            rtol=rtol,
            atol=atol,
            equal_nan=True,
        )
    )


def compare_series(key: str, a: Any, b: Any, tolerance: Tolerance) -> Finding:
    """Two metric histories (objects with .steps and .values)."""
    rtol = tolerance.rtol_for(key)
    a_final = float(a.values[-1]) if len(a) else None
    b_final = float(b.values[-1]) if len(b) else None
    if len(a) == 0 or len(b) == 0:
        side = "A" if len(a) else "B"
        return Finding(
            kind="metric",
            name=key,
            status=DIFFERS,
            a=a_final,
            b=b_final,
            detail=f"only in run {side}",
        )
    if _bitwise_equal(a.steps, b.steps) and _bitwise_equal(a.values, b.values):
        return Finding(kind="metric", name=key, status=IDENTICAL, a=a_final, b=b_final)
    common, ia, ib = np.intersect1d(a.steps, b.steps, assume_unique=False, return_indices=True)
    va, vb = a.values[ia], b.values[ib]
    unequal = np.nonzero(va.view(np.int64) != vb.view(np.int64))[0]
    first = int(common[unequal[0]]) if unequal.size else None
    abs_diff, rel_diff = _differences(va, vb)
    same_steps = len(common) == len(a) == len(b)
    detail = (
        ""
        if same_steps
        else (f"steps differ: {len(a)} points in A, {len(b)} in B, {len(common)} in common")
    )
    close = same_steps and _within(va, vb, rtol, tolerance.atol)
    return Finding(
        kind="metric",
        name=key,
        status=CLOSE if close else DIFFERS,
        a=a_final,
        b=b_final,
        max_abs_diff=abs_diff,
        max_rel_diff=rel_diff,
        first_step=first,
        detail=detail,
    )


def compare_files(path: str, a: bytes, b: bytes, tolerance: Tolerance) -> Finding:
    """Two versions of an output file: equal bytes, else numbers within tolerance."""
    suffix = PurePosixPath(path).suffix
    try:
        left, right = read_numeric(suffix, a), read_numeric(suffix, b)
    except Exception as exc:  # unreadable as numbers: it simply differs
        return Finding(
            kind="artifact",
            name=path,
            status=DIFFERS,
            detail=f"bytes differ; not comparable as numbers ({exc})",
        )
    if left is None or right is None:
        return Finding(
            kind="artifact",
            name=path,
            status=DIFFERS,
            detail=f"bytes differ ({suffix or 'no suffix'} is not a numeric format)",
        )
    (arrays_a, exact_a), (arrays_b, exact_b) = left, right
    if exact_a != exact_b or arrays_a.keys() != arrays_b.keys():
        return Finding(
            kind="artifact",
            name=path,
            status=DIFFERS,
            detail="structure or non-numeric content differs",
        )
    worst_abs = worst_rel = 0.0
    close = True
    rtol = tolerance.rtol_for(path)
    for name in arrays_a:
        x, y = np.asarray(arrays_a[name]), np.asarray(arrays_b[name])
        if x.shape != y.shape:
            return Finding(
                kind="artifact",
                name=path,
                status=DIFFERS,
                detail=f"{name}: shape {x.shape} against {y.shape}",
            )
        abs_diff, rel_diff = _differences(x, y)
        worst_abs, worst_rel = max(worst_abs, abs_diff), max(worst_rel, rel_diff)
        close = close and _within(x, y, rtol, tolerance.atol)
    return Finding(
        kind="artifact",
        name=path,
        status=CLOSE if close else DIFFERS,
        max_abs_diff=worst_abs,
        max_rel_diff=worst_rel,
        detail="bytes differ, numbers " + ("within" if close else "beyond") + " tolerance",
    )


def compare_runs(
    a: RunRecord,
    b: RunRecord,
    *,
    history: Callable[[str, str], Any],
    read_object: Callable[[str], bytes],
    tolerance: Tolerance,
) -> Comparison:
    """Compare every metric and every output of two runs."""
    metrics = [
        compare_series(key, history(a.id, key), history(b.id, key), tolerance)
        for key in sorted(a.metrics.keys() | b.metrics.keys())
    ]
    outputs_a = {x.path: x for x in a.artifacts if x.kind != "input"}
    outputs_b = {x.path: x for x in b.artifacts if x.kind != "input"}
    artifacts: list[Finding] = []
    for path in sorted(outputs_a.keys() | outputs_b.keys()):
        x: Artifact | None = outputs_a.get(path)
        y: Artifact | None = outputs_b.get(path)
        if x is None or y is None:
            artifacts.append(
                Finding(
                    kind="artifact",
                    name=path,
                    status=DIFFERS,
                    detail=f"only in run {'A' if y is None else 'B'}",
                )
            )
        elif x.digest == y.digest:
            artifacts.append(
                Finding(
                    kind="artifact", name=path, status=IDENTICAL, a=x.digest[:16], b=y.digest[:16]
                )
            )
        else:
            artifacts.append(
                compare_files(path, read_object(x.digest), read_object(y.digest), tolerance)
            )
    statuses = {f.status for f in (*metrics, *artifacts)}
    if statuses <= {IDENTICAL}:
        verdict = Verdict.IDENTICAL
    elif DIFFERS in statuses:
        verdict = Verdict.NOT_REPRODUCED
    else:
        verdict = Verdict.REPRODUCED
    return Comparison(verdict=verdict, metrics=metrics, artifacts=artifacts, tolerance=tolerance)


def tolerance_from_pyproject(text: str) -> dict[str, Any]:
    """The ``[tool.lockstep.verify]`` table of a pyproject.toml (rtol, atol, tol)."""
    import tomllib

    table = tomllib.loads(text).get("tool", {}).get("lockstep", {}).get("verify", {})
    return dict(table)

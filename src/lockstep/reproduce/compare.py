"""Judge two runs: metric series step by step and outputs bit for bit, then within tolerance.

A run's result is everything it produced: how it ended (status and exit code),
what it printed (stdout, stderr), its metrics and its output files.
IDENTICAL: every metric point and every output bitwise equal (volatile parts of
printed text and files, such as timestamps, masked and named). REPRODUCED:
everything within tolerance (|a - b| <= atol + rtol * |b|, per-key rtol
overrides). NOT_REPRODUCED: anything beyond, or the runs ended differently,
listed largest difference first. UNVERIFIABLE: nothing to compare at all.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from lockstep.core.records import Artifact, RunRecord
from lockstep.core.status import RunStatus
from lockstep.errors import LockstepError
from lockstep.reproduce.numeric import read_numeric
from lockstep.reproduce.printed import Masks, compare_text
from lockstep.reproduce.volatile import equal_but_volatile


class Verdict(StrEnum):
    IDENTICAL = "IDENTICAL"
    REPRODUCED = "REPRODUCED"
    NOT_REPRODUCED = "NOT_REPRODUCED"
    UNVERIFIABLE = "UNVERIFIABLE"  # nothing comparable: no metric, output file or printed text


IDENTICAL, CLOSE, DIFFERS = "identical", "within_tolerance", "differs"


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    rtol: float = 1e-6
    atol: float = 0.0
    per_key: Mapping[str, float] = field(default_factory=dict)
    # Regular expressions for volatile parts of printed output, beyond the built-in ones.
    masks: tuple[str, ...] = ()

    def rtol_for(self, key: str) -> float:
        return self.per_key.get(key, self.rtol)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One metric or output of the two runs, and how they compare."""

    kind: str  # "status", "metric", "output" (printed) or "artifact"
    name: str
    status: str  # identical / within_tolerance / differs
    a: Any = None
    b: Any = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    first_step: int | None = None  # metrics: the first step whose values are not bitwise equal
    first_line: int | None = None  # printed output: the first line that differs
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
    status: Finding  # how each run ended
    metrics: list[Finding]
    printed: list[Finding]  # stdout and stderr
    artifacts: list[Finding]
    tolerance: Tolerance
    notes: list[str] = field(default_factory=list)  # what the verdict must say besides findings

    def findings(self) -> list[Finding]:
        return [self.status, *self.metrics, *self.printed, *self.artifacts]

    def differences(self) -> list[Finding]:
        """Everything not identical: how the runs ended first, then largest difference first."""
        found = [f for f in self.findings() if f.status != IDENTICAL]
        return sorted(
            found,
            key=lambda f: (f.kind != "status", f.status == CLOSE, -(f.max_rel_diff or math.inf)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "tolerance": {
                "rtol": self.tolerance.rtol,
                "atol": self.tolerance.atol,
                "per_key": dict(self.tolerance.per_key),
            },
            "status": self.status.to_json(),
            "metrics": [f.to_json() for f in self.metrics],
            "printed": [f.to_json() for f in self.printed],
            "artifacts": [f.to_json() for f in self.artifacts],
            "notes": list(self.notes),
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
    """Two versions of an output file: equal bytes (volatile parts aside), else numbers
    within tolerance."""
    suffix = PurePosixPath(path).suffix
    ignored = equal_but_volatile(suffix, a, b)
    if ignored:
        return Finding(
            kind="artifact",
            name=path,
            status=IDENTICAL,
            detail="equal but for volatile bytes, ignored: " + ", ".join(ignored),
        )
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


def run_masks(record: RunRecord, extra: tuple[str, ...]) -> Masks:
    """Volatile text of one run: built-in patterns, the user's, and the run's own names."""
    command = record.sections.get("command", {})
    literals = [(record.id, "<run-id>")]
    if len(record.name) >= 8:  # a short name ("a", "job") is a word, not an identifier
        literals.append((record.name, "<run-name>"))
    for key in ("ran_in", "project_root"):
        where = command.get(key)
        if isinstance(where, str) and len(where) > 1:
            literals.append((where, "<project>"))
    return Masks.build(extra, literals)


def _exit_code(record: RunRecord) -> int | None:
    code = record.sections.get("command", {}).get("exit_code")
    return code if isinstance(code, int) else None


def compare_status(a: RunRecord, b: RunRecord) -> Finding:
    """Did both runs end the same way? A failure against a success never reproduces."""
    code_a, code_b = _exit_code(a), _exit_code(b)
    same = a.status == b.status and code_a == code_b
    detail = ""
    if not same:
        side, record, code = (
            ("B", b, code_b) if b.status is not RunStatus.FINISHED else ("A", a, code_a)
        )
        tail = (record.error or "").split("\n", 1)
        detail = f"run {side} {record.status}" + (
            f" with exit code {code}" if code is not None else ""
        )
        if len(tail) > 1 and tail[1].strip():
            detail += ": " + " | ".join(tail[1].strip().splitlines()[-3:])
    return Finding(
        kind="status",
        name="exit",
        status=IDENTICAL if same else DIFFERS,
        a=f"{a.status} ({code_a})",
        b=f"{b.status} ({code_b})",
        detail=detail,
    )


def _stream(record: RunRecord, stream: str) -> dict[str, Any] | None:
    """The recorded entry of a printed stream (digest, size, incomplete), if any."""
    entry = record.sections.get("command", {}).get(stream)
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
        return None
    return entry


def printed_output(
    record: RunRecord, stream: str, read_object: Callable[[str], bytes]
) -> bytes | None:
    """What a run printed on stdout or stderr, as stored; None when it was not recorded."""
    entry = _stream(record, stream)
    if entry is None:
        return None
    if entry.get("size") == 0:
        return b""
    try:
        return read_object(entry["digest"])
    except LockstepError:
        return None


def compare_printed(
    stream: str,
    a: RunRecord,
    b: RunRecord,
    read_object: Callable[[str], bytes],
    tolerance: Tolerance,
) -> Finding | None:
    """One printed stream of both runs; None when neither printed anything."""
    entries = {side: _stream(record, stream) for side, record in (("A", a), ("B", b))}
    if not any(e and (e.get("size", 1) or e.get("lost_bytes")) for e in entries.values()):
        return None
    cut = [side for side, entry in entries.items() if entry and entry.get("incomplete")]
    if cut:  # judged from the record alone: nothing to read
        return Finding(
            kind="output",
            name=stream,
            status=DIFFERS,
            detail=f"run {' and '.join(cut)} could not store all its {stream}: not comparable",
        )
    text_a, text_b = printed_output(a, stream, read_object), printed_output(b, stream, read_object)
    if text_a is None or text_b is None:
        missing = [side for side, text in (("A", text_a), ("B", text_b)) if text is None]
        return Finding(
            kind="output",
            name=stream,
            status=DIFFERS,
            detail=f"not recorded or not in the store for run {' and '.join(missing)}",
        )
    result = compare_text(
        text_a,
        text_b,
        run_masks(a, tolerance.masks),
        run_masks(b, tolerance.masks),
        tolerance.rtol_for(stream),
        tolerance.atol,
    )
    if result.status == IDENTICAL:
        detail = f"{result.lines_a} lines" + (
            ", equal once volatile parts (times, paths, ids) are masked" if result.masked else ""
        )
    else:
        detail = f"line {result.first_line}: {result.line_a!r} against {result.line_b!r}" + (
            f" ({result.lines_a} lines in A, {result.lines_b} in B)"
            if result.lines_a != result.lines_b
            else ""
        )
    return Finding(
        kind="output",
        name=stream,
        status=result.status,
        max_abs_diff=result.max_abs_diff,
        max_rel_diff=result.max_rel_diff,
        first_line=result.first_line,
        detail=detail,
    )


def _lost_points(record: RunRecord) -> int:
    command = record.sections.get("command", {})
    lost = record.sections.get("lost_points", {})
    counted = [command.get("lost_points"), lost.get("count") if isinstance(lost, dict) else 0]
    return max((int(n) for n in counted if isinstance(n, int)), default=0)


def _argv(record: RunRecord) -> list[str] | None:
    argv = record.sections.get("command", {}).get("argv")
    return list(argv) if isinstance(argv, list) else None


def compare_runs(
    a: RunRecord,
    b: RunRecord,
    *,
    history: Callable[[str, str], Any],
    read_object: Callable[[str], bytes],
    tolerance: Tolerance,
) -> Comparison:
    """Compare everything two runs produced: exit status, printed output, metrics, outputs."""
    status = compare_status(a, b)
    metrics = [
        compare_series(key, history(a.id, key), history(b.id, key), tolerance)
        for key in sorted(a.metrics.keys() | b.metrics.keys())
    ]
    printed = [
        f
        for stream in ("stdout", "stderr")
        if (f := compare_printed(stream, a, b, read_object, tolerance)) is not None
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
    notes: list[str] = []
    argv_a, argv_b = _argv(a), _argv(b)
    if argv_a != argv_b and argv_a is not None and argv_b is not None:
        notes.append(
            "the runs ran different commands: "
            + shlex.join(argv_a)
            + "  against  "
            + shlex.join(argv_b)
        )
    if a.sections.get("command", {}).get("cwd") != b.sections.get("command", {}).get("cwd"):
        notes.append(
            f"the runs ran in different directories: {a.sections.get('command', {}).get('cwd')}"
            f" against {b.sections.get('command', {}).get('cwd')}"
        )
    for side, record in (("A", a), ("B", b)):
        lost = _lost_points(record)
        if lost:
            notes.append(f"run {side} lost {lost} metric points: its metrics are incomplete")
    results = [*metrics, *printed, *artifacts]
    if a.status is not RunStatus.FINISHED and status.status == IDENTICAL:
        notes.append(f"both runs ended {a.status}: what is compared is how they failed")
    statuses = {f.status for f in (status, *results)}
    if DIFFERS in statuses:
        verdict = Verdict.NOT_REPRODUCED
    elif not results:
        verdict = Verdict.UNVERIFIABLE
        notes.append(
            "nothing to compare: neither run logged a metric, wrote an output file or printed "
            "anything; log metrics (lockstep.start().log), write results to a file, or print them"
        )
    elif statuses <= {IDENTICAL}:
        verdict = Verdict.IDENTICAL
    else:
        verdict = Verdict.REPRODUCED
    return Comparison(
        verdict=verdict,
        status=status,
        metrics=metrics,
        printed=printed,
        artifacts=artifacts,
        tolerance=tolerance,
        notes=notes,
    )


def tolerance_from_pyproject(text: str) -> dict[str, Any]:
    """The ``[tool.lockstep.verify]`` table of a pyproject.toml (rtol, atol, tol)."""
    import tomllib

    table = tomllib.loads(text).get("tool", {}).get("lockstep", {}).get("verify", {})
    return dict(table)

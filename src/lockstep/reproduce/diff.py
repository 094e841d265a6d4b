"""``lockstep diff``: every way two runs differ, one dimension at a time.

Dimensions: params, code, data, environment, hardware, seeds, determinism,
status, metrics, printed (stdout, stderr), outputs. Empty dimensions are left
out. A file a run read as input is data, never code.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lockstep.core.records import RunRecord
from lockstep.errors import LockstepError
from lockstep.objects.store import LocalObjectStore
from lockstep.reproduce.compare import (
    IDENTICAL,
    Tolerance,
    compare_printed,
    compare_series,
    compare_status,
)
from lockstep.reproduce.materialize import cleanup, materialize
from lockstep.reproduce.recipe import Recipe


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _changed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: {"a": a.get(k), "b": b.get(k)}
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    }


def _files_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    """added / removed / modified between two {path: (digest, size)} maps."""
    out: dict[str, list[Any]] = {
        "added": [{"path": p, "size": b[p][1]} for p in sorted(b.keys() - a.keys())],
        "removed": [{"path": p, "size": a[p][1]} for p in sorted(a.keys() - b.keys())],
        "modified": [
            {"path": p, "size_a": a[p][1], "size_b": b[p][1]}
            for p in sorted(a.keys() & b.keys())
            if a[p][0] != b[p][0]
        ],
    }
    return {k: v for k, v in out.items() if v}


def _tree(root: Path, skip: set[str]) -> dict[str, Path]:
    return {
        path.relative_to(root).as_posix(): path
        for path in root.rglob("*")
        if path.is_file()
        and ".git" not in path.relative_to(root).parts
        and path.relative_to(root).as_posix() not in skip
    }


def code_diff(a: Recipe, b: Recipe, objects: LocalObjectStore, inputs: set[str]) -> dict[str, Any]:
    """A unified diff between the two code snapshots, source files only (inputs excluded)."""
    if a.code_identity() == b.code_identity():
        return {}
    base = Path(tempfile.mkdtemp(prefix="lockstep-diff-"))
    left, right = replace(a, inputs=()), replace(b, inputs=())
    try:
        materialize(left, base / "a", objects)
        materialize(right, base / "b", objects)
        tree_a, tree_b = _tree(base / "a", inputs), _tree(base / "b", inputs)
        added = sorted(tree_b.keys() - tree_a.keys())
        removed = sorted(tree_a.keys() - tree_b.keys())
        modified: list[str] = []
        binary: list[str] = []
        lines: list[str] = []
        for path in sorted(tree_a.keys() & tree_b.keys()):
            before, after = tree_a[path].read_bytes(), tree_b[path].read_bytes()
            if before == after:
                continue
            modified.append(path)
            try:
                text_a, text_b = before.decode("utf-8"), after.decode("utf-8")
            except UnicodeDecodeError:
                binary.append(path)
                continue
            lines += difflib.unified_diff(
                text_a.splitlines(), text_b.splitlines(), f"a/{path}", f"b/{path}", lineterm=""
            )
        for path in added:
            try:
                lines += difflib.unified_diff(
                    [], tree_b[path].read_text().splitlines(), "/dev/null", f"b/{path}", lineterm=""
                )
            except UnicodeDecodeError:
                binary.append(path)
        out: dict[str, Any] = {"added": added, "removed": removed, "modified": modified}
        if binary:
            out["binary"] = binary
        if lines:
            out["diff"] = "\n".join(lines)  # whole: the text view shortens, never the data
        if a.code.get("commit") != b.code.get("commit"):
            out["commits"] = {"a": a.code.get("commit"), "b": b.code.get("commit")}
        return {k: v for k, v in out.items() if v}
    except LockstepError as exc:
        return {"unavailable": f"cannot rebuild both code snapshots: {exc}"}
    finally:
        cleanup(left, base / "a")
        cleanup(right, base / "b")
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def _packages(record: RunRecord) -> dict[str, str]:
    packages = record.sections.get("environment", {}).get("packages")
    return {p["name"]: p["version"] for p in packages} if isinstance(packages, list) else {}


def diff_runs(
    a: RunRecord,
    b: RunRecord,
    *,
    objects: LocalObjectStore,
    history: Callable[[str, str], Any],
) -> dict[str, Any]:
    """One key per dimension in which the runs differ."""
    out: dict[str, Any] = {}
    params = _changed(a.params, b.params)
    argv_a = a.sections.get("command", {}).get("argv")
    argv_b = b.sections.get("command", {}).get("argv")
    if argv_a != argv_b:
        params["argv"] = {"a": argv_a, "b": argv_b}
    if params:
        out["params"] = params

    inputs_a = {x.path: (x.digest, x.size) for x in a.inputs()}
    inputs_b = {x.path: (x.digest, x.size) for x in b.inputs()}
    try:
        recipe_a, recipe_b = Recipe.from_record(a), Recipe.from_record(b)
        code = code_diff(recipe_a, recipe_b, objects, set(inputs_a) | set(inputs_b))
    except LockstepError as exc:
        code = {"unavailable": str(exc)}
    if code:
        out["code"] = code
    data = _files_diff(inputs_a, inputs_b)
    if data:
        out["data"] = data

    env_a, env_b = a.sections.get("environment", {}), b.sections.get("environment", {})
    environment: dict[str, Any] = {}
    pk_a, pk_b = _packages(a), _packages(b)
    packages = {
        "added": {k: pk_b[k] for k in sorted(pk_b.keys() - pk_a.keys())},
        "removed": {k: pk_a[k] for k in sorted(pk_a.keys() - pk_b.keys())},
        "changed": {
            k: {"a": pk_a[k], "b": pk_b[k]}
            for k in sorted(pk_a.keys() & pk_b.keys())
            if pk_a[k] != pk_b[k]
        },
    }
    packages = {k: v for k, v in packages.items() if v}
    if packages:
        environment["packages"] = packages
    python_a = env_a.get("interpreter", {}).get("version")
    python_b = env_b.get("interpreter", {}).get("version")
    if python_a != python_b:
        environment["python"] = {"a": python_a, "b": python_b}
    variables = _changed(env_a.get("variables", {}), env_b.get("variables", {}))
    variables.pop("PYTHONHASHSEED", None)  # a seed, reported under seeds
    if variables:
        environment["variables"] = variables
    if environment:
        out["environment"] = environment

    hardware = _changed(
        _flatten(a.sections.get("hardware", {})), _flatten(b.sections.get("hardware", {}))
    )
    hardware.pop("hostname", None)
    if hardware:
        out["hardware"] = hardware
    seeds = _changed(_flatten(a.sections.get("seed", {})), _flatten(b.sections.get("seed", {})))
    seeds.pop("source", None)
    if seeds:
        out["seeds"] = seeds
    determinism = _changed(
        _flatten(a.sections.get("determinism", {})), _flatten(b.sections.get("determinism", {}))
    )
    determinism.pop("env.PYTHONHASHSEED", None)
    if determinism:
        out["determinism"] = determinism

    metrics: dict[str, Any] = {}
    for key in sorted(a.metrics.keys() | b.metrics.keys()):
        finding = compare_series(key, history(a.id, key), history(b.id, key), Tolerance())
        if finding.status != IDENTICAL:
            metrics[key] = {
                k: v
                for k, v in finding.to_json().items()
                if k in ("a", "b", "first_step", "max_abs_diff", "detail")
            }
    if metrics:
        out["metrics"] = metrics
    printed = {}
    for stream in ("stdout", "stderr"):
        stream_finding = compare_printed(stream, a, b, objects.read_bytes, Tolerance())
        if stream_finding is not None and stream_finding.status != IDENTICAL:
            printed[stream] = stream_finding.detail
    if printed:
        out["printed"] = printed
    ended = compare_status(a, b)
    if ended.status != IDENTICAL:
        out["status"] = ended.to_json()
    outputs_a = {x.path: (x.digest, x.size) for x in a.artifacts if x.kind != "input"}
    outputs_b = {x.path: (x.digest, x.size) for x in b.artifacts if x.kind != "input"}
    outputs = _files_diff(outputs_a, outputs_b)
    if outputs:
        out["outputs"] = outputs
    return out

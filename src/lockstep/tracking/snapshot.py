"""Turn what the gatherers captured into a run's stored record: JSON sections plus objects.

File contents (the git diff, untracked files, source files, lock files, logs,
inputs and outputs) go to the object store by digest; the sections hold the
digests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lockstep.capture import git as git_capture
from lockstep.capture.envvars import capture_variables
from lockstep.capture.hardware import capture_hardware
from lockstep.capture.interpreter import capture_interpreter, lock_files
from lockstep.capture.packages import installed_distributions
from lockstep.capture.result import Unavailable, as_json, gather
from lockstep.capture.sources import source_files
from lockstep.core.records import Artifact
from lockstep.meta.store import MetaStore
from lockstep.objects.store import LocalObjectStore

log = logging.getLogger("lockstep")

DEFAULT_MAX_UNTRACKED_FILE_MIB = 100
# Read by the interpreter to run the program; the code snapshot holds them.
CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyi", ".pyx", ".pxd", ".pth", ".so", ".pyd"})
DEFAULT_MAX_SOURCE_FILES = 5000


def _store_file(objects: LocalObjectStore, path: Path) -> dict[str, Any]:
    stored = objects.put_file(path)
    return {"digest": stored.digest, "size": stored.size}


def code_section(
    *,
    project_root: Path,
    store_dir: Path,
    meta: MetaStore,
    objects: LocalObjectStore,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The code to the byte: git commit + diff + untracked files, or the source files."""
    state = git_capture.capture_git(project_root)
    cap = int(config.get("max_untracked_file_mib", DEFAULT_MAX_UNTRACKED_FILE_MIB)) << 20
    if isinstance(state, Unavailable):
        files, truncated = source_files(
            project_root, max_files=int(config.get("max_source_files", DEFAULT_MAX_SOURCE_FILES))
        )
        section: dict[str, Any] = {"kind": "files", "reason": state.reason}
        entries = _file_entries(project_root, files, project_root, store_dir, meta, objects, cap)
        section.update(entries)
        if truncated:
            section["truncated"] = True
            log.warning(
                "lockstep: more than %d source files; recorded the first ones only "
                "(raise capture.max_source_files)",
                len(files),
            )
        return section
    section = {
        "kind": "git",
        "root": str(state.root),
        "commit": state.commit,
        "branch": state.branch,
        "remote": state.remote,
        "dirty": state.dirty,
        "changed": state.changed,
        "diff": objects_entry(objects, state.diff) if state.diff else None,
    }
    section.update(
        _file_entries(state.root, state.untracked, project_root, store_dir, meta, objects, cap)
    )
    return section


def objects_entry(objects: LocalObjectStore, data: bytes) -> dict[str, Any]:
    stored = objects.put_bytes(data)
    return {"digest": stored.digest, "size": stored.size}


def _file_entries(
    base: Path,
    relative_paths: list[str],
    project_root: Path,
    store_dir: Path,
    meta: MetaStore,
    objects: LocalObjectStore,
    cap: int,
) -> dict[str, Any]:
    """Untracked or source files stored by digest, minus the store itself and earlier outputs."""
    from lockstep.objects.hashing import hash_file

    store = store_dir.resolve()
    candidates: list[tuple[str, Path, str]] = []  # (code path, absolute, project path)
    for relative in relative_paths:
        absolute = (base / relative).resolve()
        if absolute == store or store in absolute.parents or not absolute.is_file():
            continue
        try:
            project_path = absolute.relative_to(project_root.resolve()).as_posix()
        except ValueError:
            project_path = str(absolute)
        candidates.append((relative, absolute, project_path))
    hashed = {path: hash_file(absolute) for _, absolute, path in candidates}
    earlier_outputs = meta.recorded_outputs(list(hashed))
    files: list[dict[str, Any]] = []
    excluded: list[str] = []
    over_cap: list[str] = []
    for relative, absolute, project_path in candidates:
        digest, size = hashed[project_path]
        if (project_path, digest) in earlier_outputs:
            excluded.append(relative)  # an earlier run wrote exactly this: output, not code
            continue
        entry: dict[str, Any] = {
            "path": relative,
            "digest": digest,
            "size": size,
            "mode": oct(absolute.stat().st_mode & 0o777),
        }
        if size > cap:
            entry["stored"] = False
            over_cap.append(relative)
            log.warning(
                "lockstep: %s (%d MiB) is over the %d MiB cap for code files; recorded by digest "
                "only (raise capture.max_untracked_file_mib in .lockstep/config.toml)",
                relative,
                size >> 20,
                cap >> 20,
            )
        else:
            stored = objects.put_file(absolute)
            entry["digest"] = stored.digest  # the bytes as stored, if the file changed since
        files.append(entry)
    return {"files": files, "excluded_outputs": excluded, "over_cap": over_cap}


def environment_section(
    *,
    project_root: Path,
    objects: LocalObjectStore,
    environ: Mapping[str, str],
    config: Mapping[str, Any],
    packages: list[dict[str, Any]] | Unavailable | None,
    interpreter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Interpreter, packages, lock files (stored), conda env and allowlisted variables."""
    locks = []
    for relative in lock_files(project_root):
        entry = _store_file(objects, project_root / relative)
        locks.append({"path": relative, **entry})
    if packages is None:
        packages = gather(installed_distributions)
    return {
        "interpreter": interpreter or capture_interpreter(),
        "packages": as_json(packages),
        "lock_files": locks,
        "conda_env": environ.get("CONDA_DEFAULT_ENV"),
        "variables": capture_variables(environ, config.get("env", ())),
    }


def hardware_section() -> dict[str, Any]:
    return capture_hardware()


def file_artifacts(
    project_root: Path, files: Mapping[str, int], objects: LocalObjectStore
) -> tuple[list[Artifact], list[Artifact]]:
    """Inputs (read only) and outputs (written) stored by digest, as artifacts."""
    from lockstep.capture.iohook import WRITE

    inputs: list[Artifact] = []
    outputs: list[Artifact] = []
    for relative, kind in sorted(files.items()):
        path = project_root / relative
        if not path.is_file():
            continue  # written, then removed: a temporary file
        if not kind & WRITE and path.suffix in CODE_SUFFIXES:
            continue  # the interpreter loading the program's modules: code, not data
        stored = objects.put_file(path)
        is_output = bool(kind & WRITE)
        artifact = Artifact(
            path=Path(relative).as_posix(),
            digest=stored.digest,
            size=stored.size,
            kind="output" if is_output else "input",
        )
        (outputs if is_output else inputs).append(artifact)
    return inputs, outputs


def ignore_patterns(config: Mapping[str, Any]) -> list[str]:
    return [str(p) for p in config.get("ignore", ())]


def matches_any(path: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(
        fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + os.sep) for p in patterns
    )

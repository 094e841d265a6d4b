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
from typing import TYPE_CHECKING, Any

from lockstep.capture import git as git_capture
from lockstep.capture.envvars import capture_variables
from lockstep.capture.hardware import capture_hardware
from lockstep.capture.interpreter import capture_interpreter, lock_files
from lockstep.capture.packages import installed_distributions
from lockstep.capture.result import Unavailable, as_json, gather
from lockstep.capture.secrets import is_secret_file, redact_url
from lockstep.capture.sources import source_files
from lockstep.core.records import Artifact
from lockstep.objects.store import LocalObjectStore

if TYPE_CHECKING:
    from lockstep.meta.store import MetaStore

log = logging.getLogger("lockstep")

DEFAULT_MAX_UNTRACKED_FILE_MIB = 100
# Read by the interpreter to run the program; the code snapshot holds them.
CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyi", ".pyx", ".pxd", ".pth", ".so", ".pyd"})
DEFAULT_MAX_SOURCE_FILES = 5000


def _store_file(objects: LocalObjectStore, path: Path) -> dict[str, Any]:
    stored = objects.put_file(path)
    return {"digest": stored.digest, "size": stored.size}


def snapshot_code(
    *, project_root: Path, store_dir: Path, objects: LocalObjectStore, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The code to the byte: git commit + diff + untracked files, or the source files.

    Every byte goes to the object store now, before the command can change it;
    files that turn out to be earlier runs' outputs are dropped afterwards
    (``drop_earlier_outputs``), once the metadata is open.
    """
    state = git_capture.capture_git(project_root)
    cap = int(config.get("max_untracked_file_mib", DEFAULT_MAX_UNTRACKED_FILE_MIB)) << 20
    if isinstance(state, Unavailable):
        limit = int(config.get("max_source_files", DEFAULT_MAX_SOURCE_FILES))
        files, truncated = source_files(project_root, max_files=limit)
        section: dict[str, Any] = {
            "kind": "files",
            "root": str(project_root),
            "reason": state.reason,
        }
        section["files"], section["over_cap"] = _store_files(
            project_root, files, store_dir, objects, cap, config
        )
        if truncated:
            section["truncated"] = True
            log.warning(
                "lockstep: more than %d source files; recorded the first %d only "
                "(raise capture.max_source_files)",
                limit,
                limit,
            )
        return section
    section = {
        "kind": "git",
        "root": str(state.root),
        "commit": state.commit,
        "branch": state.branch,
        "remote": redact_url(state.remote) if state.remote else None,
        "dirty": state.dirty,
        "changed": state.changed,
        "diff": objects_entry(objects, state.diff) if state.diff else None,
    }
    section["files"], section["over_cap"] = _store_files(
        state.root, state.untracked, store_dir, objects, cap, config
    )
    return section


def code_identity(code: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two code snapshots the same code (not where they were taken)."""
    return {
        "kind": code.get("kind"),
        "commit": code.get("commit"),
        "diff": (code.get("diff") or {}).get("digest"),
        "files": sorted((f["path"], f["digest"]) for f in code.get("files", [])),
    }


def objects_entry(objects: LocalObjectStore, data: bytes) -> dict[str, Any]:
    stored = objects.put_bytes(data)
    return {"digest": stored.digest, "size": stored.size}


def _store_files(
    base: Path,
    relative_paths: list[str],
    store_dir: Path,
    objects: LocalObjectStore,
    cap: int,
    config: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Untracked or source files stored by digest (the store itself left out)."""
    from lockstep.objects.hashing import hash_file

    store = store_dir.resolve()
    files: list[dict[str, Any]] = []
    over_cap: list[str] = []
    allowed = _secret_files_allowed(config)
    for relative in relative_paths:
        if is_secret_file(relative, allowed):
            log.warning(
                "lockstep: %s looks like a secret file; not recorded (opt it in with "
                "capture.secret_files_allowed in .lockstep/config.toml)",
                relative,
            )
            continue
        absolute = (base / relative).resolve()
        if absolute == store or store in absolute.parents or not absolute.is_file():
            continue
        entry: dict[str, Any] = {"path": relative, "mode": oct(absolute.stat().st_mode & 0o777)}
        digest, size = hash_file(absolute)
        if size > cap:
            entry.update(digest=digest, size=size, stored=False)
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
            entry.update(digest=stored.digest, size=stored.size)
        files.append(entry)
    return files, over_cap


def drop_earlier_outputs(code: dict[str, Any], meta: MetaStore, project_root: Path) -> None:
    """Leave out of the code the files an earlier run wrote, byte for byte, as outputs."""
    files = code.get("files")
    if not files:
        return
    base = Path(code["root"])

    def project_path(relative: str) -> str:
        absolute = (base / relative).resolve()
        try:
            return absolute.relative_to(project_root.resolve()).as_posix()
        except ValueError:
            return str(absolute)

    keyed = [(project_path(f["path"]), f) for f in files]
    from lockstep.errors import ServerUnreachable

    try:
        outputs = meta.recorded_outputs([path for path, _ in keyed])
    except ServerUnreachable:
        # A server that is down cannot say; every file stays in the code (more is
        # recorded, never less, and the run goes on).
        outputs = set()
    code["files"] = [f for path, f in keyed if (path, f["digest"]) not in outputs]
    code["excluded_outputs"] = [f["path"] for path, f in keyed if (path, f["digest"]) in outputs]


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
    if isinstance(packages, list):  # an index or VCS URL may carry a token
        packages = [
            {**p, "url": redact_url(p["url"])} if isinstance(p.get("url"), str) else p
            for p in packages
        ]
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


def written_since(root: Path, since_ns: int, skip: list[Path]) -> list[str]:
    """Project files modified since the command started: the outputs that native code
    (torch.save, HDF5, ...) wrote without passing through Python's ``open``."""
    from lockstep.capture.sources import is_environment, skipped_directory

    skipped = {p.resolve() for p in skip}
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        subdirs[:] = [
            d
            for d in subdirs
            if not skipped_directory(d)
            and (here / d).resolve() not in skipped
            and not is_environment(here / d)
        ]
        for name in files:
            path = here / name
            try:
                if path.stat().st_mtime_ns >= since_ns:
                    found.append(path.relative_to(root).as_posix())
            except OSError:
                continue
    return sorted(found)


def ignore_patterns(config: Mapping[str, Any]) -> list[str]:
    return [str(p) for p in config.get("ignore", ())]


def matches_any(path: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(
        fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + os.sep) for p in patterns
    )


def read_then_written(
    reports: list[dict[str, Any]], files: Mapping[str, int], objects: LocalObjectStore
) -> list[dict[str, Any]]:
    """The saved first contents of project files the run read and then rewrote, stored."""
    from lockstep.capture.iohook import WRITE

    entries: dict[str, dict[str, Any]] = {}
    for report in reports:
        for relative, copy in (report.get("preimages") or {}).items():
            path = Path(relative).as_posix()
            if path in entries or not files.get(path, 0) & WRITE or not Path(copy).is_file():
                continue
            stored = objects.put_file(Path(copy))
            entries[path] = {"path": path, "digest": stored.digest, "size": stored.size}
    return [entries[p] for p in sorted(entries)]


def outside_inputs(paths: list[str], store_dir: Path) -> list[dict[str, Any]]:
    """Files read outside the project, by path and digest (never stored); the stat cache
    keeps a large dataset there from being read again while it does not change."""
    from lockstep.objects.hashing import hash_file
    from lockstep.objects.statcache import StatCache, stat_key

    if not paths:
        return []
    cache = StatCache(store_dir / "cache" / "stat.db")
    out: list[dict[str, Any]] = []
    fresh = []
    try:
        for path in sorted(set(paths)):
            try:
                key = stat_key(os.stat(path))
                known = cache.lookup(path).get(path)
                if known is not None and known[0] == key:
                    digest = known[1]
                else:
                    digest, _ = hash_file(Path(path))
                    fresh.append((path, key, digest))
            except OSError:
                continue
            out.append({"path": path, "digest": digest, "size": key[2]})
        cache.update(fresh)
    finally:
        cache.close()
    return out


def _secret_files_allowed(config: Mapping[str, Any]) -> list[str]:
    return [str(p) for p in config.get("secret_files_allowed", ())]


def without_secret_files(
    files: Mapping[str, int], config: Mapping[str, Any]
) -> tuple[dict[str, int], list[str]]:
    """The run's files minus secret files (never stored as inputs or outputs), and those."""
    allowed = _secret_files_allowed(config)
    kept = {p: k for p, k in files.items() if not is_secret_file(p, allowed)}
    return kept, sorted(set(files) - set(kept))

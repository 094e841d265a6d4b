"""Register, read, compare, materialise and promote model versions.

A model version is a manifest of the files a run wrote or logged, stored by content like
a dataset version, numbered per name, with a summary of what each file holds. Aliases
(``production``, ``staging``) point at versions; every move is kept, and a move can
require that the run which made the version has reproduced.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.core import validate
from lockstep.core.canonical import canonical_json
from lockstep.core.records import Artifact, RunRecord
from lockstep.core.status import RunStatus
from lockstep.data.changes import Changes, between
from lockstep.data.versions import MANIFEST_SCHEMA, manifest_mode
from lockstep.errors import (
    ModelNotFound,
    ObjectCorrupt,
    ObjectMissing,
    PromotionRefused,
    UsageError,
)
from lockstep.meta.datasets import FileEntry
from lockstep.meta.models import AliasMove, ModelVersion
from lockstep.objects import guard

if TYPE_CHECKING:
    from lockstep.workspace import Workspace

# What an alias move can require of the run that made the version.
REQUIREMENTS = ("none", "reproduced", "within-noise")
_REPRODUCED = {"IDENTICAL", "REPRODUCED"}


@dataclass(frozen=True, kw_only=True)
class RegisterResult:
    version: ModelVersion
    created: bool  # False: a version of this name already has this content
    stored: int  # files this registration had to store (the rest were the run's)
    aliases: list[AliasMove] = field(default_factory=list)


def who() -> tuple[str, str]:
    """(host, user) recorded with an alias move."""
    import pwd
    import socket

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return socket.gethostname(), user


class ModelRegistry:
    """Model versions of one store."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.records = workspace.model_records()

    # registering -------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        run: RunRecord,
        paths: Sequence[str],
        message: str = "",
        aliases: Sequence[str] = (),
        allow_unfinished: bool = False,
    ) -> RegisterResult:
        """A new version of model name from files the run wrote or logged.

        paths are relative to the project root. A file contributes its base name, a
        directory the files under it; the files' objects are the run's, stored when it
        recorded them (a logged artifact not stored yet is stored now, from the file,
        when the file still holds what the run logged).
        """
        validate.name(name, "model name")
        for alias in aliases:
            validate.alias(alias)
        if run.status is not RunStatus.FINISHED and not allow_unfinished:
            raise UsageError(
                f"run {run.name} ({run.id[:12]}) is {run.status}; register a model from a "
                "finished run, or pass --allow-unfinished"
            )
        if not paths:
            raise UsageError("give the model's files with --path (files the run wrote or logged)")
        chosen = self._files_of(run, paths)
        with guard.writing(self.workspace.objects.root):
            stored = self._ensure_stored(chosen)
            entries = [
                FileEntry(path=inner, digest=a.digest, size=a.size, mode=self._mode(a))
                for inner, a in sorted(chosen.items())
            ]
            version, created = self.record_version(name, entries, run_id=run.id, message=message)
        moves = [self.move_alias(version, alias) for alias in aliases]
        if moves:
            version = self.records.version_by_id(version.id)
        return RegisterResult(version=version, created=created, stored=stored, aliases=moves)

    def record_version(
        self,
        name: str,
        entries: Sequence[FileEntry],
        *,
        run_id: str | None,
        message: str = "",
        created_by: str | None = None,
    ) -> tuple[ModelVersion, bool]:
        """A version of model name from files already in the object store: its manifest,
        its summary, its record (the existing version when one has this content). Call it
        holding the gc guard."""
        manifest = {
            "schema_version": MANIFEST_SCHEMA,
            "kind": "dir",
            "files": [[e.path, e.size, e.mode, e.digest] for e in entries],
        }
        manifest_digest = self.workspace.objects.put_bytes(canonical_json(manifest)).digest
        summary = self._summary(entries)
        if created_by is None:
            host, user = who()
            created_by = f"{user}@{host}"
        self.workspace.objects.publish([manifest_digest, *(e.digest for e in entries)])
        return self.records.add_version(
            name=name,
            manifest_digest=manifest_digest,
            files=entries,
            message=message,
            run_id=run_id,
            created_by=created_by,
            summary=summary,
        )

    def _files_of(self, run: RunRecord, paths: Sequence[str]) -> dict[str, Artifact]:
        """Name inside the version -> the run's artifact, for each path given."""
        produced = {a.path: a for a in run.artifacts if a.kind != "input"}
        chosen: dict[str, Artifact] = {}
        for given in paths:
            path = posixpath.normpath(given.strip("/")) if given else ""
            if path in produced:
                found = {posixpath.basename(path): produced[path]}
            else:
                prefix = "" if path in {"", "."} else path + "/"
                found = {p[len(prefix) :]: a for p, a in produced.items() if p.startswith(prefix)}
            if not found:
                shown = ", ".join(sorted(produced)[:5]) or "nothing"
                raise UsageError(
                    f"{given} is not among the outputs or artifacts of run {run.name} "
                    f"({run.id[:12]}), which recorded: {shown}"
                    f"{', ...' if len(produced) > 5 else ''}"
                )
            for inner, artifact in found.items():
                previous = chosen.get(inner)
                if previous is not None and previous.path != artifact.path:
                    raise UsageError(
                        f"{previous.path} and {artifact.path} would both be {inner} in the "
                        "model version; register them as separate models or pass their folder"
                    )
                chosen[inner] = artifact
        return chosen

    def _ensure_stored(self, chosen: dict[str, Artifact]) -> int:
        """Store what the run only hashed (a logged artifact), from the file as it is now."""
        objects = self.workspace.objects
        todo = [a for a in chosen.values() if not objects.has(a.digest)]
        if not todo:
            return 0
        data = self.workspace.data()
        stored = 0
        for artifact in todo:
            path = self.workspace.project_root / artifact.path
            if not path.is_file():
                raise ObjectMissing(artifact.digest, f"{artifact.path} (as the run recorded it)")
            if data.digest_of(path, store=True) != artifact.digest:
                raise UsageError(
                    f"{artifact.path} changed since the run recorded it; register from a run "
                    "that wrote the current file, or restore it"
                )
            stored += 1
        return stored

    def _mode(self, artifact: Artifact) -> int:
        try:
            return manifest_mode((self.workspace.project_root / artifact.path).stat().st_mode)
        except OSError:
            return 0o644

    def _summary(self, entries: Sequence[FileEntry]) -> dict[str, Any]:
        from lockstep.models.summary import summarise

        files: dict[str, Any] = {}
        flags: list[str] = []
        for entry in entries:
            summary = summarise(self.workspace.objects.path(entry.digest), entry.path)
            files[entry.path] = {**summary, "size": entry.size, "digest": entry.digest}
            flags += [f"{entry.path}: {flag}" for flag in summary.get("flags", [])]
        return {"files": files, "flags": flags}

    # reading -----------------------------------------------------------------

    def files(self, version: ModelVersion) -> list[FileEntry]:
        return self.records.files(version.id)

    def diff(self, a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
        """Files added, removed or changed; tensors whose shape or dtype changed; what
        differs between the runs that made them."""
        changes: Changes = between(
            {f.path: (f.size, f.digest) for f in self.files(a)},
            {f.path: (f.size, f.digest) for f in self.files(b)},
        )
        tensors: list[dict[str, Any]] = []
        files_a, files_b = a.summary.get("files", {}), b.summary.get("files", {})
        for path in sorted(set(files_a) & set(files_b)):
            table_a = files_a[path].get("tensor_table") or {}
            table_b = files_b[path].get("tensor_table") or {}
            for key in sorted(set(table_a) | set(table_b)):
                before, after = table_a.get(key), table_b.get(key)
                if before != after:
                    tensors.append({"file": path, "tensor": key, "a": before, "b": after})
        return {
            "a": a.ref,
            "b": b.ref,
            "files": changes.to_json(),
            "tensors": tensors,
            "runs": self._run_differences(a, b),
        }

    def _run_differences(self, a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
        meta = self.workspace.meta
        if a.run_id is None or b.run_id is None:
            return {"note": "a version registered without a run: nothing to compare"}
        if a.run_id == b.run_id:
            return {"same_run": a.run_id, "differences": []}
        if not (meta.has_run(a.run_id) and meta.has_run(b.run_id)):
            return {"note": "a producing run is not in this store (pull it from the remote)"}
        from lockstep.reproduce.diff import diff_runs
        from lockstep.tracking.history import history_reader

        found = diff_runs(
            meta.get_run(a.run_id),
            meta.get_run(b.run_id),
            objects=self.workspace.objects,
            history=history_reader(meta),
        )
        # The dimensions, with the small ones in full (`lockstep diff` shows all of it).
        return {
            "a": a.run_id,
            "b": b.run_id,
            "dimensions": sorted(found),
            **{k: found[k] for k in ("params", "seeds", "data", "environment") if k in found},
        }

    # materialising -----------------------------------------------------------

    def materialise(
        self, version: ModelVersion, target: Path, *, verify: bool = False, force: bool = False
    ) -> dict[str, Any]:
        """Write the version's files under target by the store's link strategies; a file
        already there with the right content stays, one with other content is refused
        unless force."""
        from lockstep.data.versions import _refuse_links_between
        from lockstep.objects.hashing import hash_file

        objects = self.workspace.objects
        files = self.files(version)
        missing = [f.digest for f in files if not objects.has(f.digest)]
        if missing:
            from lockstep.data.sync import fetch_missing

            still = fetch_missing(self.workspace, missing)
            if still:
                raise ObjectMissing(still[0], f"a file of {version.ref}")
        target = target.resolve()
        strategies = self.workspace.link_strategies()
        data = self.workspace.data()
        written, unchanged, used = 0, 0, set()
        for entry in files:
            validate.relative_path(entry.path, f"{version.ref}: file path")
            path = target / entry.path
            _refuse_links_between(target, str(path.parent))
            if path.is_symlink():
                raise UsageError(f"{path} is a symbolic link; models get never writes through one")
            if verify:
                actual, _ = hash_file(objects.path(entry.digest))
                if actual != entry.digest:
                    raise ObjectCorrupt(entry.digest, actual)
            if path.is_file():
                # From the stat cache: getting an unchanged checkout again reads nothing.
                if path.stat().st_size == entry.size and data.digest_of(path) == entry.digest:
                    unchanged += 1
                    continue
                if not force:
                    raise UsageError(
                        f"{path} exists with other content; move it away or pass --force"
                    )
            path.parent.mkdir(parents=True, exist_ok=True)
            how = objects.link(entry.digest, path, strategies, replace=path.exists())
            if how == "copy":
                os.chmod(path, entry.mode or 0o644)
            used.add(how)
            written += 1
        return {
            "version": version.ref,
            "target": str(target),
            "written": written,
            "unchanged": unchanged,
            "links": sorted(used),
        }

    def local_path(self, version: ModelVersion) -> Path:
        """The version under the store (checked out on first use): the file itself when
        the version is one file, else its folder."""
        where = self.workspace.store_dir / "checkouts" / "models" / version.model
        where = where / f"v{version.number}"
        self.materialise(version, where, force=True)
        files = self.files(version)
        return where / files[0].path if len(files) == 1 else where

    # tags, removal -----------------------------------------------------------

    def tag(self, version: ModelVersion, assignment: str) -> tuple[str, str]:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise UsageError(f"tag {assignment!r} must be KEY=VALUE")
        validate.name(key, "tag key")
        self.records.set_tag(version, key, value)
        return key, value

    def remove(self, version: ModelVersion) -> None:
        self.records.delete_version(version)

    # aliases -----------------------------------------------------------------

    def requirement(self, alias: str, explicit: str | None) -> str:
        """What moving alias requires: --require, else `[models] require` in config.toml
        (one level for every alias, or a table of alias patterns)."""
        if explicit is not None:
            return explicit
        configured = self.workspace.settings.config.get("models", {}).get("require")
        if isinstance(configured, str):
            return configured
        if isinstance(configured, dict):
            for pattern, level in configured.items():
                if fnmatch.fnmatchcase(alias, str(pattern)):
                    return str(level)
        return "none"

    def check_requirement(self, version: ModelVersion, alias: str, requirement: str) -> None:
        """Refuse (PromotionRefused) unless the version's run has earned the requirement."""
        if requirement == "none":
            return
        if requirement not in REQUIREMENTS:
            raise UsageError(f"requirement {requirement!r} is not one of {', '.join(REQUIREMENTS)}")
        meta = self.workspace.meta
        if version.run_id is None or not meta.has_run(version.run_id):
            raise PromotionRefused(
                version.ref,
                alias,
                requirement,
                "the run that made it is not in this store; pull it, then `lockstep verify` it",
            )
        run = meta.get_run(version.run_id)
        history = [
            h
            for h in run.sections.get("verifications", []) or []
            if isinstance(h, dict) and h.get("kind") == "reproduction"
        ]
        accepted = any(h.get("verdict") in _REPRODUCED for h in history)
        if requirement == "within-noise":
            accepted = accepted or any(h.get("within_noise") is True for h in history)
        if accepted:
            return
        last = history[-1]["verdict"] if history else None
        reason = (
            f"its run {run.id[:12]} was last judged {last}"
            if last
            else f"its run {run.id[:12]} has never been reproduced"
        )
        seeds = " --seeds 3" if requirement == "within-noise" else ""
        raise PromotionRefused(
            version.ref, alias, requirement, f"{reason}; run `lockstep verify {run.id}{seeds}`"
        )

    def move_alias(
        self,
        version: ModelVersion,
        alias: str,
        *,
        require: str | None = None,
        note: str = "",
    ) -> AliasMove:
        validate.alias(alias)
        self.check_requirement(version, alias, self.requirement(alias, require))
        host, user = who()
        return self.records.move_alias(
            name=version.model, alias=alias, number=version.number, host=host, user=user, note=note
        )

    def delete_alias(self, name: str, alias: str) -> AliasMove:
        validate.alias(alias)
        if name not in self.records.model_names():
            raise ModelNotFound(name)
        host, user = who()
        return self.records.move_alias(name=name, alias=alias, number=None, host=host, user=user)

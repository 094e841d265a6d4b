"""Keep the object store honest: ``fsck`` re-hashes every object, ``gc`` removes only the
objects nothing refers to (no dataset or model version, no run)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lockstep.objects import guard
from lockstep.objects.hashing import hash_file
from lockstep.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class FsckReport:
    checked: int
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model versions a bad object breaks

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


@dataclass(frozen=True, kw_only=True)
class GcReport:
    kept: int
    removed: list[str]
    freed_bytes: int
    dry_run: bool


def referenced(workspace: Workspace) -> set[str]:
    """Every object a run, a dataset version or a model version needs."""

    return (
        workspace.meta.referenced_digests()
        | workspace.data().records.referenced_digests()
        | workspace.model_records().referenced_digests()
    )


def fsck(workspace: Workspace) -> FsckReport:
    """Re-hash every object (in parallel) and look for referenced objects that are gone."""
    objects = workspace.objects
    digests = list(objects.iter_digests())

    def check(digest: str) -> str | None:
        actual, _ = hash_file(objects.path(digest))
        return None if actual == digest else digest

    with ThreadPoolExecutor(min(8, (os.cpu_count() or 2) * 2)) as pool:
        corrupt = sorted(d for d in pool.map(check, digests) if d is not None)
    present = set(digests)
    missing = sorted(d for d in referenced(workspace) if d not in present)
    return FsckReport(
        checked=len(digests),
        corrupt=corrupt,
        missing=missing,
        models=_models_with(workspace, [*corrupt, *missing]),
    )


def _models_with(workspace: Workspace, digests: list[str]) -> list[str]:
    """The model versions whose manifest or files are among digests."""
    if not digests:
        return []

    records = workspace.model_records()
    ids = {v for versions in records.versions_containing(digests).values() for v in versions}
    bad = set(digests)
    refs = {v.ref for v in records.versions_by_ids(ids)}
    for name in records.model_names():
        refs |= {v.ref for v in records.versions(name) if v.manifest_digest in bad}
    return sorted(refs)


def gc(
    workspace: Workspace, *, dry_run: bool, waiting: Callable[[], None] = lambda: None
) -> GcReport:
    """Remove objects no dataset version or run refers to, and partial writes.

    Holds the store alone while it works (objects/guard.py): an add, pull or run storing
    objects finishes recording what refers to them first, and none starts meanwhile;
    so every partial write left then is a dead process's.
    """
    with guard.collecting(workspace.objects.root, waiting):
        return _collect(workspace, dry_run=dry_run)


def _collect(workspace: Workspace, *, dry_run: bool) -> GcReport:
    objects = workspace.objects
    keep = referenced(workspace)
    removed: list[str] = []
    freed = 0
    kept = 0
    for digest in list(objects.iter_digests()):
        if digest in keep:
            kept += 1
            continue
        path = objects.path(digest)
        freed += path.stat().st_size
        removed.append(digest)
        if not dry_run:
            path.unlink()
    if not dry_run:
        for leftover in objects.partial_writes():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                leftover.unlink()
    return GcReport(kept=kept, removed=removed, freed_bytes=freed, dry_run=dry_run)

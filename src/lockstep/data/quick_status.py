"""``data status [NAME]`` answered before the metadata store loads, when it can be.

The walk against each dataset's snapshot starts first (in forked shards for a
large tree); the versions are read with plain sqlite3 (meta.peek). When nothing
moved since each snapshot was compared with that very version, the snapshots
already hold the answer, and SQLAlchemy is never imported. Otherwise the caller
opens the workspace and hands it the walks already under way.
"""

from __future__ import annotations

import os

from lockstep.data.changes import Changes, as_snapshotted
from lockstep.data.worktree import PendingComparison, Snapshots, start_comparison
from lockstep.errors import StoreNotFound
from lockstep.meta.peek import VersionPeek, peek_latest_versions, peek_version
from lockstep.settings import Settings
from lockstep.workspace import default_database, locate, worktree_snapshots


class StatusShortcut:
    """Starts the walks at once; answer() gives the status if no SQL beyond a peek is
    needed. ref: one dataset (``name``, ``name@vN``), or None for every dataset."""

    def __init__(self, settings: Settings, ref: str | None) -> None:
        self.pending: dict[str, PendingComparison] = {}
        self._versions: list[VersionPeek] | None = None
        self._project_root = settings.cwd
        try:
            store_dir, self._project_root = locate(settings, create=False)
        except StoreNotFound:
            return  # opening the workspace says so
        snapshots = worktree_snapshots(store_dir)
        database = default_database(store_dir)
        sqlite = settings.with_config(store_dir).db_url is None
        if ref is not None:
            self._start(snapshots, [ref.partition("@")[0]])  # the walk first, then the peek
            peeked = peek_version(database, ref) if sqlite else None
            self._versions = [peeked] if peeked else None
        elif sqlite:  # every dataset: which ones there are comes first
            self._versions = peek_latest_versions(database)
            self._start(snapshots, [v.dataset for v in self._versions or []])

    def _start(self, snapshots: Snapshots, names: list[str]) -> None:
        for name in names:
            snapshot = snapshots.load(name)
            if snapshot is not None and os.path.exists(snapshot.root):
                self.pending[name] = start_comparison(snapshot.root, snapshot)

    def answer(self) -> list[tuple[VersionPeek, Changes]] | None:
        """Each version with its changes, or None when the full path must answer."""
        if not self._versions:
            return None
        answers = []
        for version in self._versions:
            pending = self.pending.get(version.dataset)
            if pending is None:
                return None
            root = (self._project_root / version.source_path).resolve()
            snapshot = pending.snapshot
            if str(root) != pending.root or not snapshot.compared_with(version.manifest_digest):
                return None
            if not pending.result().clean:
                return None
            answers.append((version, as_snapshotted(snapshot)))
        return answers

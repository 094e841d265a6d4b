"""``data status NAME`` answered before the metadata store loads, when it can be.

The walk against the dataset's snapshot starts first (in forked shards for a
large tree); the version is then read with plain sqlite3 (meta.peek). When
nothing moved since the snapshot was compared with that very version, the
snapshot already holds the answer, and SQLAlchemy is never imported. Otherwise
the caller opens the workspace and hands it the walk already under way.
"""

from __future__ import annotations

import os
from pathlib import Path

from lockstep.data.changes import Changes, as_snapshotted
from lockstep.data.worktree import PendingComparison, start_comparison
from lockstep.errors import StoreNotFound
from lockstep.meta.peek import VersionPeek, peek_version
from lockstep.settings import Settings
from lockstep.workspace import default_database, locate, worktree_snapshots


class StatusShortcut:
    """Starts the walk at once; answer() says the status if no SQL beyond a peek is needed."""

    def __init__(self, settings: Settings, ref: str) -> None:
        self.ref = ref
        self.pending: PendingComparison | None = None
        self._database: Path | None = None
        self._project_root = settings.cwd
        try:
            store_dir, self._project_root = locate(settings, create=False)
        except StoreNotFound:
            return  # opening the workspace says so
        if settings.with_config(store_dir).db_url is None:
            self._database = default_database(store_dir)
        snapshot = worktree_snapshots(store_dir).load(ref.partition("@")[0])
        if snapshot is not None and os.path.exists(snapshot.root):
            self.pending = start_comparison(snapshot.root, snapshot)

    def answer(self) -> tuple[VersionPeek, Changes] | None:
        if self.pending is None or self._database is None:
            return None
        version = peek_version(self._database, self.ref)
        if version is None:
            return None
        root = (self._project_root / version.source_path).resolve()
        snapshot = self.pending.snapshot
        if str(root) != self.pending.root or not snapshot.compared_with(version.manifest_digest):
            return None
        if not self.pending.result().clean:
            return None
        return version, as_snapshotted(snapshot)

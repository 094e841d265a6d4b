"""What differs between two sets of files: added, removed and modified paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lockstep.data.worktree import Snapshot

Entries = dict[str, tuple[int, str]]  # path -> (size, digest)


@dataclass(frozen=True, kw_only=True)
class Changes:
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    modified: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "modified": self.modified}


def between(before: Entries, after: Entries) -> Changes:
    """Files added, removed and modified from before to after."""
    return Changes(
        added=[{"path": p, "size": after[p][0]} for p in sorted(after.keys() - before.keys())],
        removed=[{"path": p, "size": before[p][0]} for p in sorted(before.keys() - after.keys())],
        modified=[
            {"path": p, "size_before": before[p][0], "size_now": after[p][0]}
            for p in sorted(before.keys() & after.keys())
            if before[p][1] != after[p][1]
        ],
    )


def differ_of(changes: Changes, recorded: Entries) -> dict[str, tuple[int, str] | None]:
    """The version's entry of each changed path (None: added), as snapshots keep them."""
    differ: dict[str, tuple[int, str] | None] = {c["path"]: None for c in changes.added}
    differ.update((c["path"], recorded[c["path"]]) for c in changes.removed + changes.modified)
    return differ


def as_snapshotted(snapshot: Snapshot) -> Changes:
    """How the copy differed from the version the snapshot was compared with, when
    nothing has moved since."""
    assert snapshot.against is not None
    differ = snapshot.against[1]
    return between(
        {p: e for p, e in differ.items() if e is not None},
        {p: e for p in differ if (e := snapshot.current(p)) is not None},
    )

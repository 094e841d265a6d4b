"""Snapshots of datasets' working copies, so a no-change status is one walk-and-stat pass.

A snapshot is what lockstep last saw where a dataset lives, like git's index: each
file's stat (inode, size, mtime, mode) with its digest, and how the copy differed
from the version it was last compared with. Status walks the tree and compares
stats alone; only files whose stat moved are read. Snapshots are machine-local
caches under the store (``cache/worktree/``): losing one costs a slower status,
never a wrong one.

Large trees are walked by forked processes, one shard each, started before the
metadata store loads so the walk overlaps its import.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lockstep.data.tree import walk

_FORMAT = 1
# A file modified within the filesystem's timestamp granularity of being read can keep
# its mtime; entries this recent when a snapshot is taken are re-read by the next status.
RACY_NS = 1_000_000_000
# Below this many files one process walks faster than forked ones start.
_FORK_AT = 20_000

# inode, size, mtime_ns, permission bits: what a file must still show to be taken as
# unchanged. Snapshots keep it packed (one bytes object per file loads in a quarter
# of the time of a tuple of four ints).
Stat = tuple[int, int, int, int]
_PACKED = struct.Struct("<QQqI")
pack_stat = _PACKED.pack
_DIGEST_BYTES = 32

Entry = tuple[int, str]  # size, digest
Against = tuple[str, dict[str, Entry | None]]


@dataclass
class Snapshot:
    root: str
    # The version manifest the copy was last compared with, and the version's entry
    # (size, digest) of each path where they differed (None: a path the version lacks);
    # None when unknown.
    against: Against | None
    stats: dict[str, bytes]  # relative path -> packed stat
    digests: bytes  # the files' digests, 32 bytes each, in the order of stats
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def taken(
        cls,
        root: Path,
        files: Iterable[tuple[str, Stat, str]],
        against: Against | None,
        started_ns: int,
    ) -> Snapshot:
        """A snapshot of files stat'ed and hashed no earlier than started_ns; entries
        too recent to trust are stored with an mtime that never matches."""
        limit = started_ns - RACY_NS
        stats: dict[str, bytes] = {}
        digests: list[bytes] = []
        for relative, (ino, size, mtime_ns, mode), digest in files:
            stats[relative] = pack_stat(ino, size, mtime_ns if mtime_ns < limit else -1, mode)
            digests.append(bytes.fromhex(digest))
        return cls(str(root), against, stats, b"".join(digests))

    def compared_with(self, manifest_digest: str) -> bool:
        """Whether the snapshot knows how the copy differed from that manifest."""
        return self.against is not None and self.against[0] == manifest_digest

    def matched(self, manifest_digest: str) -> bool:
        """Whether the copy had exactly that manifest's paths and digests."""
        return self.against == (manifest_digest, {})

    def current(self, relative: str) -> Entry | None:
        """The copy's (size, digest) of a path when the snapshot was taken."""
        if relative not in self.stats:
            return None
        return self.stat(relative)[1], self.digest(relative)

    def recorded(self, relative: str) -> Entry | None:
        """The compared version's (size, digest) of a path (see compared_with)."""
        assert self.against is not None
        differ = self.against[1]
        return differ[relative] if relative in differ else self.current(relative)

    def entries(self) -> dict[str, tuple[Stat, str]]:
        """relative path -> (stat, digest) of every file, unpacked."""
        unpack, blob, step = _PACKED.unpack, self.digests, _DIGEST_BYTES
        return {
            relative: (unpack(packed), blob[i * step : (i + 1) * step].hex())
            for i, (relative, packed) in enumerate(self.stats.items())
        }

    def _positions(self) -> dict[str, int]:
        if self._index is None:
            self._index = {relative: i for i, relative in enumerate(self.stats)}
        return self._index

    def stat(self, relative: str) -> Stat:
        return _PACKED.unpack(self.stats[relative])

    def digest(self, relative: str) -> str:
        start = self._positions()[relative] * _DIGEST_BYTES
        return self.digests[start : start + _DIGEST_BYTES].hex()

    def updated(
        self,
        changed: list[tuple[str, Stat, str]],
        missing: list[str],
        against: Against | None,
        started_ns: int,
    ) -> Snapshot:
        """This snapshot with changed files (new or moved) and missing files applied:
        past two flat copies, the work follows the number of changes, not the tree."""
        limit = started_ns - RACY_NS
        positions = self._positions()
        stats = dict(self.stats)
        blob = bytearray(self.digests)
        appended: list[bytes] = []
        for relative, (ino, size, mtime_ns, mode), digest in changed:
            stats[relative] = pack_stat(ino, size, mtime_ns if mtime_ns < limit else -1, mode)
            position = positions.get(relative)
            if position is None:
                appended.append(bytes.fromhex(digest))  # a new key goes last, as in stats
            else:
                start = position * _DIGEST_BYTES
                blob[start : start + _DIGEST_BYTES] = bytes.fromhex(digest)
        if missing:
            dropped = {positions[relative] for relative in missing}
            for relative in missing:
                del stats[relative]
            blob = bytearray(
                b"".join(
                    blob[i * _DIGEST_BYTES : (i + 1) * _DIGEST_BYTES]
                    for i in range(len(positions))
                    if i not in dropped
                )
            )
        return Snapshot(self.root, against, stats, bytes(blob) + b"".join(appended))


class Snapshots:
    """One snapshot per dataset, each in its own file, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, dataset: str) -> Path:
        return self.directory / (dataset.encode().hex()[:200] + ".snap")

    def load(self, dataset: str) -> Snapshot | None:
        try:
            raw = self._path(dataset).read_bytes()
            form, version, name, root, against, stats, digests = marshal.loads(raw)
        except (OSError, EOFError, ValueError, TypeError):
            return None  # absent, torn by a crash or from another Python: walk the slow way
        if form != _FORMAT or version != sys.version_info[:2] or name != dataset:
            return None
        if len(digests) != len(stats) * _DIGEST_BYTES:
            return None
        return Snapshot(root, against, stats, digests)

    def save(self, dataset: str, snapshot: Snapshot) -> None:
        """Keep a snapshot for the next status; a store that cannot take it (read-only, full)
        only makes that status slower."""
        with contextlib.suppress(OSError):
            self._save(dataset, snapshot)

    def _save(self, dataset: str, snapshot: Snapshot) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self._path(dataset)
        temporary = target.with_name(f".{target.name}.{os.getpid()}")
        data = (
            _FORMAT,
            tuple(sys.version_info[:2]),
            dataset,
            snapshot.root,
            snapshot.against,
            snapshot.stats,
            snapshot.digests,
        )
        temporary.write_bytes(marshal.dumps(data))
        os.replace(temporary, target)

    def drop(self, dataset: str) -> None:
        self._path(dataset).unlink(missing_ok=True)


@dataclass
class Comparison:
    """A working copy against a snapshot."""

    started_ns: int
    moved: list[tuple[str, int, Stat]]  # (path, device, stat) of files new or changed
    missing: list[str]  # snapshot files no longer there

    @property
    def clean(self) -> bool:
        return not self.moved and not self.missing


def compare(root: str, snapshot: Snapshot, shard: int = 0, shards: int = 1) -> Comparison:
    """One walk of (a shard of) root, stat against the snapshot."""
    started_ns = time.time_ns()
    files = snapshot.stats
    moved: list[tuple[str, int, Stat]] = []
    seen = 0
    for relative, info in walk(root, shard, shards):
        ino, size, mtime_ns = info.st_ino, info.st_size, info.st_mtime_ns
        mode = info.st_mode & 0o7777
        recorded = files.get(relative)
        if recorded is not None and recorded == pack_stat(ino, size, mtime_ns, mode):
            seen += 1
        else:
            moved.append((relative, info.st_dev, (ino, size, mtime_ns, mode)))
            if recorded is not None:
                seen += 1
    expected = len(files) if shards == 1 else sum(1 for r in files if hash(r) % shards == shard)
    missing: list[str] = []
    if seen != expected:  # rare: only then is the set of present files worth building
        present = {r for r, _ in walk(root, shard, shards)}
        missing = [
            r for r in files if (shards == 1 or hash(r) % shards == shard) and r not in present
        ]
    return Comparison(started_ns, moved, missing)


class PendingComparison:
    """A comparison running in forked processes; result() joins them."""

    def __init__(self, root: str, snapshot: Snapshot, shards: int, fork: bool) -> None:
        self.root = root
        self.snapshot = snapshot
        self._children: list[tuple[int, int]] = []
        self._result: Comparison | None = None
        self.forked = fork
        if not fork:
            self._result = compare(root, snapshot)
            return
        for shard in range(shards):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: compare its shard, send the result, leave at once
                os.close(read_end)
                code = 0
                try:
                    result = compare(root, snapshot, shard, shards)
                    payload = (result.started_ns, result.moved, result.missing)
                    with os.fdopen(write_end, "wb") as out:
                        out.write(marshal.dumps(payload))
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)  # no atexit handlers, no flushing the parent's buffers
            os.close(write_end)
            self._children.append((pid, read_end))

    def result(self) -> Comparison:
        """The merged comparison; a failed shard is redone here so its error surfaces."""
        if self._result is not None:
            return self._result
        parts: list[tuple[int, list[tuple[str, int, Stat]], list[str]] | None] = []
        for pid, read_end in self._children:
            with os.fdopen(read_end, "rb") as pipe:
                payload = pipe.read()
            _, status = os.waitpid(pid, 0)
            parts.append(marshal.loads(payload) if status == 0 and payload else None)
        self._children = []
        if any(part is None for part in parts):
            self._result = compare(self.root, self.snapshot)
        else:
            self._result = Comparison(
                min(p[0] for p in parts if p is not None),
                [m for p in parts if p is not None for m in p[1]],
                [m for p in parts if p is not None for m in p[2]],
            )
        return self._result


def start_comparison(root: str, snapshot: Snapshot) -> PendingComparison:
    """Compare root with the snapshot, in forked shards when the tree is large and the
    process may fork."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    fork = len(snapshot.stats) >= _FORK_AT and (cores or 1) > 1 and may_fork()
    # Forked even on two cores: the caller's own work (loading the metadata store)
    # runs beside the walk.
    return PendingComparison(root, snapshot, min(cores or 1, 8), fork)


def may_fork() -> bool:
    """Whether this process can fork safely: it has fork() and a single thread. A child
    forked beside other threads (a training script's, a native thread pool's) can
    deadlock on a lock one of them held, so such processes walk in-process."""
    if not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1  # native threads included
    except OSError:
        import threading

        return threading.active_count() == 1

"""Add, inspect, compare and check out dataset versions.

A version is a manifest of relative paths, sizes, modes and BLAKE3 digests,
itself stored by digest. Adding walks the tree once, asks the stat cache which
files are unchanged, hashes and stores only the others (in parallel, with one
sync for the batch), and records the version and its files in one transaction.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lockstep.core import validate
from lockstep.core.canonical import canonical_json
from lockstep.data.changes import Changes, as_snapshotted, between, differ_of
from lockstep.data.tree import walk
from lockstep.data.worktree import (
    RACY_NS,
    Against,
    Comparison,
    PendingComparison,
    Snapshot,
    Snapshots,
    Stat,
    start_comparison,
)
from lockstep.errors import InvalidValue, ObjectCorrupt, UsageError
from lockstep.meta.datasets import DatasetRecords, DatasetVersion, FileEntry
from lockstep.objects import guard
from lockstep.objects.statcache import StatCache, StatKey, stat_key
from lockstep.objects.store import LocalObjectStore, SourceFile

MANIFEST_SCHEMA = 1
# Files at least this large are hashed by BLAKE3's own threads over a memory map and
# copied by the kernel; smaller ones are read once, hashed and written by a thread pool.
_LARGE = 8 << 20


@dataclass(frozen=True)
class Scanned:
    relative: str
    absolute: str
    key: StatKey
    mode: int

    @property
    def stat(self) -> Stat:
        return (self.key[1], self.key[2], self.key[3], self.mode)


@dataclass(frozen=True, kw_only=True)
class AddResult:
    version: DatasetVersion
    created: bool  # False: the content equals the latest version
    hashed: int  # files read this time (the rest came from the stat cache)
    stored: int  # objects new to the store
    skipped_links: tuple[str, ...] = ()  # symbolic links under the path, not versioned


def scan(root: Path, links: list[str] | None = None) -> Iterator[Scanned]:
    """Regular files under root (or root itself), with their stat keys; symbolic links
    below root are not followed (collected in links when given)."""
    top = str(root)
    prefix = top + os.sep
    for relative, info in walk(top, links=links):
        yield Scanned(
            relative,
            prefix + relative if relative else top,
            stat_key(info),
            stat.S_IMODE(info.st_mode),
        )


class DataWorkspace:
    """Datasets of one store: the object store, the stat cache and the version records."""

    def __init__(
        self,
        objects: LocalObjectStore,
        records: DatasetRecords,
        cache: StatCache,
        snapshots: Snapshots,
        project_root: Path,
        workers: int | None = None,
        durable: bool = True,
        strategies: tuple[str, ...] = ("reflink", "copy"),
    ) -> None:
        self.objects = objects
        self.records = records
        self.cache = cache
        self.snapshots = snapshots
        self.project_root = project_root
        # Adding: one thread by default: measured on ext4 (2 cores), a second thread
        # doubled the time of storing 20,000 small files through kernel lock contention
        # in the store's directories. Checking out: one per core (up to 4), since files
        # go to the working copy's directories: 2 threads halved 20,000 hardlinks.
        # `[data] workers = N` in config.toml sets both.
        self.workers = workers or 1
        self.checkout_workers = workers or min(4, os.cpu_count() or 1)
        # Durable: objects reach the disk before the version naming them is recorded.
        # `[data] fsync = false` trades that for speed (as DVC does), not atomicity.
        self.durable = durable
        # How add stores a file (and checkout writes one) by default: sharing blocks
        # (reflink) or the inode (hardlink, opt-in) where the filesystem can, so that
        # adding costs a hash and no copy.
        self.strategies = strategies

    # hashing -----------------------------------------------------------------

    def _store_one(self, item: Scanned) -> tuple[Scanned, str, bool]:
        source = SourceFile(item.absolute, item.key[0], item.key[2], item.key[3], item.mode)
        if item.key[2] >= _LARGE:
            from lockstep.objects.hashing import hash_file

            digest, _ = hash_file(item.absolute)
            return item, digest, self.objects.put_hashed_file(source, digest, self.strategies)
        from blake3 import blake3

        with open(item.absolute, "rb") as handle:
            data = handle.read()
        digest = str(blake3(data).hexdigest())
        return item, digest, self.objects.put_small(data, digest, source, self.strategies)

    def digests(
        self, root: Path, items: list[Scanned], *, store: bool, cached: bool = True
    ) -> tuple[dict[str, str], int, int]:
        """Digest of every scanned file (relative path -> digest); unchanged files from the
        stat cache unless not cached (files known to have changed); with store, new
        content goes to the object store."""
        started_ns = time.time_ns()
        known = self.cache.lookup(str(root)) if cached else {}
        out: dict[str, str] = {}
        todo: list[Scanned] = []
        for item in items:
            hit = known.get(item.absolute)
            if hit is not None and hit[0] == item.key and (not store or self.objects.has(hit[1])):
                out[item.relative] = hit[1]
            else:
                todo.append(item)
        stored = 0
        if todo:
            if store:
                self.objects.prepare()
                small = [i for i in todo if i.key[2] < _LARGE]
                # Large files one at a time: BLAKE3 already hashes each on every core.
                results = self._chunked(self._store_one, small)
                results += [self._store_one(i) for i in todo if i.key[2] >= _LARGE]
                if self.durable:
                    self.objects.sync()
            else:
                from lockstep.objects.hashing import hash_file

                results = self._chunked(lambda i: (i, hash_file(i.absolute)[0], False), todo)
            for item, digest, new in results:
                out[item.relative] = digest
                stored += new
            # A file this recent may change again without its mtime moving: not cached.
            trusted = started_ns - RACY_NS
            self.cache.update(
                (i.absolute, i.key, out[i.relative]) for i in todo if i.key[3] < trusted
            )
        return out, len(todo), stored

    def digest_of(self, path: Path, *, store: bool = False) -> str:
        """One file's digest, from the stat cache when the file is unchanged (with store,
        its content goes to the object store too)."""
        digests, _, _ = self.digests(path, list(scan(path)), store=store)
        return digests[""]

    def _chunked(self, work: Any, items: list[Any], workers: int | None = None) -> list[Any]:
        """work over items on a few threads (default: self.workers), each taking a
        contiguous share.

        One task per thread, not per file: per-file futures cost more than a
        small file's I/O, and more threads than cores contend on directory locks.
        """
        workers = workers or self.workers
        if len(items) < 64 or workers == 1:
            return [work(i) for i in items]
        size = -(-len(items) // workers)
        shares = [items[k : k + size] for k in range(0, len(items), size)]
        with ThreadPoolExecutor(len(shares)) as pool:
            return [
                r for part in pool.map(lambda share: [work(i) for i in share], shares) for r in part
            ]

    # versions ----------------------------------------------------------------

    def files(self, version: DatasetVersion) -> list[FileEntry]:
        """The version's files, from its manifest object (one read, a tenth of the time
        of the metadata's rows), else from the metadata."""
        from blake3 import blake3

        path = self.objects.path(version.manifest_digest)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return self.records.files(version.id)
        if blake3(raw).hexdigest() != version.manifest_digest:  # fsck names it
            return self.records.files(version.id)
        import orjson

        return manifest_files(orjson.loads(raw))

    def _display(self, root: Path) -> str:
        try:
            return root.relative_to(self.project_root).as_posix()
        except ValueError:
            return str(root)

    def _absolute(self, source: str) -> Path:
        path = Path(source)
        return path if path.is_absolute() else self.project_root / path

    def add(self, path: Path, *, name: str | None = None, message: str = "") -> AddResult:
        """A file or directory as a new version of a dataset (or the unchanged latest).

        gc waits while this stores objects and records the version that names them.
        """
        with guard.writing(self.objects.root):
            return self._add(path, name=name, message=message)

    def _add(self, path: Path, *, name: str | None, message: str) -> AddResult:
        root = path.resolve()
        if not root.exists():
            raise UsageError(f"{path} does not exist; give a file or a directory to version")
        try:
            name = validate.name(root.name if name is None else name, "dataset name")
        except InvalidValue as exc:
            hint = "" if name is not None else "; give one with --name"
            raise InvalidValue(exc.field, exc.value, exc.rule + hint) from None
        try:
            latest: DatasetVersion | None = self.records.versions(name)[-1]
        except LookupError:
            latest = None
        if latest is not None and self._unchanged_since(name, root, latest):
            return AddResult(version=latest, created=False, hashed=0, stored=0)
        started_ns = time.time_ns()
        links: list[str] = []
        items = sorted(scan(root, links), key=lambda s: s.relative)
        if not items:
            raise UsageError(f"{path} holds no files to version")
        digests, hashed, stored = self.digests(root, items, store=True)
        if "hardlink" in self.strategies:  # linked files became read-only: the snapshot
            items = [_with_mode_now(i) for i in items]  # must not see them all as moved
        entries = [
            FileEntry(
                path=i.relative,
                digest=digests[i.relative],
                size=i.key[2],
                mode=manifest_mode(i.mode),
            )
            for i in items
        ]
        kind = "file" if root.is_file() else "dir"
        manifest = {
            "schema_version": MANIFEST_SCHEMA,
            "kind": kind,
            "files": [[e.path, e.size, e.mode, e.digest] for e in entries],
        }
        manifest_digest = self.objects.put_bytes(canonical_json(manifest)).digest
        self.snapshots.save(
            name,
            Snapshot.taken(
                root,
                ((i.relative, i.stat, digests[i.relative]) for i in items),
                (manifest_digest, {}),
                started_ns,
            ),
        )
        if latest is not None and latest.manifest_digest == manifest_digest:
            version, created = latest, False
        else:
            self.objects.publish([manifest_digest, *(e.digest for e in entries)])
            version, created = self.records.add_version(
                name=name,
                manifest_digest=manifest_digest,
                files=entries,
                message=message,
                source_path=self._display(root),
                kind=kind,
            )
        return AddResult(
            version=version,
            created=created,
            hashed=hashed,
            stored=stored,
            skipped_links=tuple(sorted(links)),
        )

    def _unchanged_since(self, dataset: str, root: Path, latest: DatasetVersion) -> bool:
        """Whether the dataset's snapshot of root says it still holds exactly latest's
        files (one walk, no file read): adding it again would change nothing."""
        snapshot = self.snapshots.load(dataset)
        if snapshot is None or snapshot.root != str(root):
            return False
        if not snapshot.matched(latest.manifest_digest):
            return False
        if not start_comparison(str(root), snapshot).result().clean:
            return False
        # Unchanged files, but are their objects still here? (A gc or a hand may have
        # removed them: adding again must store them again.)
        return self.objects.has(latest.manifest_digest) and all(
            self.objects.has(f.digest) for f in self.files(latest)
        )

    def status(self, version: DatasetVersion, pending: PendingComparison | None = None) -> Changes:
        """The working copy (where the version was added from) against the version.

        From the dataset's snapshot when there is one for that place: one walk
        comparing stats, reading only files whose stat moved, and the version's
        file list only when the snapshot did not already equal it. pending: the
        walk, started earlier (see worktree.start_comparison).
        """
        root = self._absolute(version.source_path).resolve()
        if not root.exists():
            return Changes(removed=[{"path": f.path, "size": f.size} for f in self.files(version)])
        if pending is None or pending.root != str(root):
            snapshot = self.snapshots.load(version.dataset)
            if snapshot is None or snapshot.root != str(root):
                return self._status_by_scan(version, root)
            pending = start_comparison(str(root), snapshot)
        snapshot = pending.snapshot
        comparison = pending.result()
        known = snapshot.compared_with(version.manifest_digest)
        if comparison.clean and known:
            return as_snapshotted(snapshot)
        moved, digests = self._moved(root, comparison)
        now = {i.relative: (i.key[2], digests[i.relative]) for i in moved}
        if known:
            # Only the paths that moved, vanished or already differed can differ now.
            assert snapshot.against is not None
            affected = {*snapshot.against[1], *comparison.missing, *now}
            gone = set(comparison.missing)
            before = {p: e for p in affected if (e := snapshot.recorded(p)) is not None}
            after = {
                p: e
                for p in affected
                if p not in gone and (e := now.get(p) or snapshot.current(p)) is not None
            }
        else:
            before = {f.path: (f.size, f.digest) for f in self.files(version)}
            current = _as_now(snapshot, comparison, moved, digests)
            after = {r: (info[1], d) for r, (info, d) in current.items()}
        changes = between(before, after)
        self.snapshots.save(
            version.dataset,
            snapshot.updated(
                [(i.relative, i.stat, digests[i.relative]) for i in moved],
                comparison.missing,
                (version.manifest_digest, differ_of(changes, before)),
                comparison.started_ns,
            ),
        )
        return changes

    def _moved(self, root: Path, comparison: Comparison) -> tuple[list[Scanned], dict[str, str]]:
        """The files a comparison found new or changed, and their digests (read now: the
        stat cache cannot know files whose stat moved since the snapshot)."""
        moved = [
            Scanned(
                relative,
                f"{root}{os.sep}{relative}" if relative else str(root),
                (device, ino, size, mtime_ns),
                mode,
            )
            for relative, device, (ino, size, mtime_ns, mode) in comparison.moved
        ]
        digests, _, _ = self.digests(root, moved, store=False, cached=False)
        return moved, digests

    def _working_copy(self, dataset: str, root: Path) -> dict[str, tuple[Stat, str]]:
        """Every file under root with its stat and digest: through the dataset's snapshot
        when it has one of root (only moved files read), else a scan and the stat cache."""
        snapshot = self.snapshots.load(dataset)
        if snapshot is not None and snapshot.root == str(root):
            comparison = start_comparison(str(root), snapshot).result()
            return _as_now(snapshot, comparison, *self._moved(root, comparison))
        return self._scanned(root)

    def _scanned(self, root: Path) -> dict[str, tuple[Stat, str]]:
        """Every file under root with its stat and digest, by a scan and the stat cache."""
        items = list(scan(root))
        digests, _, _ = self.digests(root, items, store=False)
        return {i.relative: (i.stat, digests[i.relative]) for i in items}

    def _status_by_scan(self, version: DatasetVersion, root: Path) -> Changes:
        """Status without a snapshot: scan, digests from the stat cache; leaves a snapshot."""
        started_ns = time.time_ns()
        files = self._scanned(root)
        recorded = {f.path: (f.size, f.digest) for f in self.files(version)}
        changes = between(recorded, {r: (info[1], d) for r, (info, d) in files.items()})
        self.snapshots.save(
            version.dataset,
            Snapshot.taken(
                root,
                ((r, info, d) for r, (info, d) in files.items()),
                (version.manifest_digest, differ_of(changes, recorded)),
                started_ns,
            ),
        )
        return changes

    def diff(self, a: DatasetVersion, b: DatasetVersion) -> Changes:
        return between(
            {f.path: (f.size, f.digest) for f in self.files(a)},
            {f.path: (f.size, f.digest) for f in self.files(b)},
        )

    def checkout(
        self,
        version: DatasetVersion,
        *,
        to: Path | None = None,
        force: bool = False,
        verify: bool = False,
    ) -> dict[str, Any]:
        """Write the version's files at to (default: where it was added from).

        Refuses to overwrite a file whose content is no version's (a local edit)
        unless force; removes files of other versions of this dataset that this
        one lacks; leaves anything else alone and says so.
        """
        target = (to or self._absolute(version.source_path)).resolve()
        files = self.files(version)
        base = f"{target}{os.sep}"
        paths = (
            {"": str(target)} if version.kind == "file" else {f.path: base + f.path for f in files}
        )
        started_ns = time.time_ns()
        existing = self._working_copy(version.dataset, target) if target.exists() else {}
        current = {relative: digest for relative, (_, digest) in existing.items()}
        # What other versions of this dataset held: only read when something is there.
        known = self._known_contents(version.dataset) if current else set()
        conflicts = [
            f.path or target.name
            for f in files
            if f.path in current
            and current[f.path] != f.digest
            and (f.path, current[f.path]) not in known
        ]
        if conflicts and not force:
            raise UsageError(
                f"{len(conflicts)} files under {target} have local changes that are in no "
                f"version of {version.dataset} ({', '.join(conflicts[:3])}"
                f"{', ...' if len(conflicts) > 3 else ''}); add them first or use --force"
            )
        changed = [f for f in files if current.get(f.path) != f.digest]

        no_hardlink = tuple(s for s in self.strategies if s != "hardlink") or ("copy",)

        def materialise(entry: FileEntry) -> str:
            if verify:
                self.verify_object(entry.digest)
            path = paths[entry.path]
            # An executable is copied, not hardlinked: the object's inode is not executable.
            strategies = no_hardlink if entry.mode & 0o111 else self.strategies
            how = self.objects.link(entry.digest, path, strategies, replace=entry.path in current)
            if how == "copy":
                os.chmod(path, entry.mode or 0o644)
            return how

        # Directories first, so the threads only create files; never through a link.
        if version.kind != "file":
            for entry in changed:
                validate.relative_path(entry.path, f"{version.ref}: file path")
        for directory in sorted({os.path.dirname(paths[entry.path]) for entry in changed}):
            _refuse_links_between(target, directory)
            os.makedirs(directory, exist_ok=True)
        used = set(self._chunked(materialise, changed, self.checkout_workers))
        written = len(changed)
        wanted = {f.path for f in files}
        removed, kept = [], []
        for relative, digest in current.items():
            if relative in wanted or version.kind == "file":
                continue
            if (relative, digest) in known:
                (target / relative).unlink()
                removed.append(relative)
            else:
                kept.append(relative)
        if target == self._absolute(version.source_path).resolve():
            self._snapshot_checkout(version, target, started_ns, existing, changed, removed, kept)
        return {
            "version": version.ref,
            "target": str(target),
            "written": written,
            "unchanged": len(files) - written,
            "removed": removed,
            "not_in_version": kept,
            "links": sorted(used),
        }

    def _snapshot_checkout(
        self,
        version: DatasetVersion,
        target: Path,
        started_ns: int,
        existing: dict[str, tuple[Stat, str]],
        written: list[FileEntry],
        removed: list[str],
        kept: list[str],
    ) -> None:
        """Leave the dataset's snapshot of the working copy a checkout just wrote."""
        files = dict(existing)
        for relative in removed:
            del files[relative]
        for entry in written:
            info = os.stat(f"{target}{os.sep}{entry.path}" if entry.path else target)
            stat_now = (info.st_ino, info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode))
            files[entry.path] = (stat_now, entry.digest)
        # Files the checkout left alone are ones the version lacks.
        against: Against = (version.manifest_digest, dict.fromkeys(kept))
        self.snapshots.save(
            version.dataset,
            Snapshot.taken(
                target,
                ((r, info, d) for r, (info, d) in files.items()),
                against,
                started_ns,
            ),
        )

    def _known_contents(self, dataset: str) -> set[tuple[str, str]]:
        known: set[tuple[str, str]] = set()
        for version in self.records.versions(dataset):
            known.update((f.path, f.digest) for f in self.files(version))
        return known

    def verify_object(self, digest: str) -> None:
        from lockstep.objects.hashing import hash_file

        actual, _ = hash_file(self.objects.path(digest))
        if actual != digest:
            raise ObjectCorrupt(digest, actual)


def _refuse_links_between(top: Path, directory: str) -> None:
    """A checkout writes inside its target only: no directory on the way may be a link
    (one pointing elsewhere would have the checkout overwrite files outside)."""
    relative = os.path.relpath(directory, top)
    if relative == ".":
        return
    current = str(top)
    for part in relative.split(os.sep):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise UsageError(
                f"{current} is a symbolic link; a checkout never writes through one "
                "(remove the link, or check out elsewhere with --to)"
            )
        if not os.path.exists(current):
            return


def _as_now(
    snapshot: Snapshot, comparison: Comparison, moved: list[Scanned], digests: dict[str, str]
) -> dict[str, tuple[Stat, str]]:
    """The snapshot's files with a comparison's findings applied: the copy as it is now."""
    files = snapshot.entries()
    for relative in comparison.missing:
        del files[relative]
    files.update((i.relative, (i.stat, digests[i.relative])) for i in moved)
    return files


def manifest_mode(mode: int) -> int:
    """The mode a manifest records: executable or not, as git does. Write bits say
    how a copy is held (a hardlinked file is read-only), not what the data is."""
    return 0o755 if mode & 0o111 else 0o644


def _with_mode_now(item: Scanned) -> Scanned:
    """The item with its file's current mode (its key stays the one its digest matches)."""
    return replace(item, mode=stat.S_IMODE(os.stat(item.absolute).st_mode))


def manifest_files(manifest: dict[str, Any]) -> list[FileEntry]:
    """The file entries a version's manifest lists."""
    return [FileEntry(path=p, size=s, mode=m, digest=d) for p, s, m, d in manifest["files"]]

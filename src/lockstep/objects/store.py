"""The local content-addressed object store: immutable files named by their BLAKE3 digest.

Layout: ``<root>/blake3/ab/cdef...`` (the algorithm is part of the path so a
future algorithm can live beside it). A write goes to a temporary file in the
store, is hashed while it is copied (so an object's name always matches its
bytes, even if the source changes meanwhile), fsynced, made read-only and
renamed into place: an interrupted write never leaves a visible object, and
concurrent writers of the same content are harmless.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lockstep.errors import ObjectMissing, StoreError, UsageError

ALGORITHM = "blake3"
_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks copy-on-write
_CHUNK = 1 << 20
_READ_ONLY = 0o444
# What a filesystem answers when it cannot share blocks or inodes at all.
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV})


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    digest: str
    size: int


class LocalObjectStore:
    """Objects under one directory, written atomically and never modified."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = root / ALGORITHM
        self._tmp = root / "tmp"
        self._base_name = str(self._base)
        # (strategy, device) pairs this filesystem refused (no reflink on ext4, no
        # hardlink across devices): not tried again for every file of a batch.
        self._unsupported: set[tuple[str, int]] = set()

    def path(self, digest: str) -> Path:
        if not _well_formed(digest):
            from lockstep.errors import InvalidValue

            raise InvalidValue("object digest", digest, "64 lowercase hex characters")
        return Path(self._name(digest))

    def _name(self, digest: str) -> str:
        # A string, not a Path: adding 20,000 files spent a second building Paths.
        return f"{self._base_name}/{digest[:2]}/{digest[2:]}"

    def has(self, digest: str) -> bool:
        # A name like '../../etc/x' is no object, whatever file it would reach.
        return _well_formed(digest) and os.path.isfile(self._name(digest))

    def put_bytes(self, data: bytes) -> StoredObject:
        from blake3 import blake3

        digest = str(blake3(data).hexdigest())
        if not self.has(digest):
            with self._temporary() as (handle, tmp_path):
                handle.write(data)
                self._commit(handle, tmp_path, digest)
        return StoredObject(digest=digest, size=len(data))

    def put_file(self, source: str | os.PathLike[str]) -> StoredObject:
        """Store a file's bytes; one read that both hashes and copies."""
        from blake3 import blake3

        hasher = blake3()
        size = 0
        with open(source, "rb") as reader, self._temporary() as (handle, tmp_path):
            while chunk := reader.read(_CHUNK):
                hasher.update(chunk)
                handle.write(chunk)
                size += len(chunk)
            digest = str(hasher.hexdigest())
            if not self.has(digest):
                self._commit(handle, tmp_path, digest)
        return StoredObject(digest=digest, size=size)

    def prepare(self) -> None:
        """Create the 256 fan-out directories once, before a batch of writes."""
        if not (self._base / "ff").is_dir():
            for index in range(256):
                (self._base / f"{index:02x}").mkdir(parents=True, exist_ok=True)

    def put_small(
        self,
        data: bytes,
        digest: str,
        source: SourceFile | None = None,
        strategies: tuple[str, ...] = ("copy",),
    ) -> bool:
        """Store bytes already hashed, without an fsync (call ``sync`` after a batch).

        For adding thousands of small files: one exclusive create of a hidden
        temporary name in the object's own directory, one write, one rename.
        (A shared temporary directory serialises concurrent writers on its lock.)
        When the bytes were read from source and a sharing strategy (reflink,
        hardlink) comes before copy, the file is linked instead of written. If
        the source changed since it was read, the bytes read are written instead.
        Durability for the whole batch comes from one ``sync`` before the
        metadata naming these objects is committed. Returns whether it was new.
        """
        if os.path.exists(self._name(digest)):
            return False
        if source is not None and self._share_first(source, digest, strategies):
            return True
        with self._beside(digest) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _READ_ONLY)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        return True

    def put_hashed_file(
        self, source: SourceFile, digest: str, strategies: tuple[str, ...] = ("copy",)
    ) -> bool:
        """Store a file already hashed, by the first strategy that works here: reflink
        (shared blocks), hardlink (the shared inode becomes read-only, the working
        file included) or a copy by the kernel. No fsync: call ``sync`` after a batch.

        The file's size and modification time must still be those it was hashed
        with; otherwise it changed underneath and is refused rather than stored
        under a name that does not match its bytes.
        """
        if os.path.exists(self._name(digest)):
            return False
        if self._share_first(source, digest, strategies):
            return True
        if "copy" in strategies:
            with self._beside(digest) as tmp:
                shutil.copyfile(source.path, tmp)
                if _changed(source):
                    raise StoreError(
                        f"{source.path} changed while it was being stored; add it again"
                    )
                os.chmod(tmp, _READ_ONLY)
            return True
        raise UsageError(f"none of the link strategies {strategies} could store {source.path}")

    def _share_first(self, source: SourceFile, digest: str, strategies: tuple[str, ...]) -> bool:
        """Try the sharing strategies listed before copy, in order; True once one stored it.

        An executable is never hardlinked: the shared inode would take the object's
        read-only mode and lose its executable bit.
        """
        for strategy in strategies:
            if strategy == "copy":
                return False
            if strategy == "hardlink" and source.mode & 0o111:
                continue
            if self._share(source, digest, strategy):
                return True
        return False

    def _share(self, source: SourceFile, digest: str, strategy: str) -> bool:
        """Try to store source by sharing its blocks or inode; False when this filesystem
        cannot, or the file changed since it was hashed (its mode is then restored)."""
        if (strategy, source.device) in self._unsupported:
            return False
        tmp = self._hidden(digest)
        try:
            _place(source.path, tmp, strategy)
            os.chmod(tmp, _READ_ONLY)
            if _changed(source):
                raise OSError(errno.ESTALE, "changed since it was hashed")
            os.replace(tmp, self._name(digest))
            return True
        except OSError as exc:
            _raise_space(exc, self.root)
            if exc.errno in _UNSUPPORTED:
                self._unsupported.add((strategy, source.device))
            with contextlib.suppress(OSError):
                if strategy == "hardlink" and os.path.samefile(tmp, source.path):
                    os.chmod(source.path, source.mode)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False

    @contextlib.contextmanager
    def _beside(self, digest: str) -> Iterator[str]:
        """A hidden temporary name in the object's own directory, renamed into place when
        the block succeeds and removed when it does not."""
        tmp = self._hidden(digest)
        try:
            yield tmp
            os.replace(tmp, self._name(digest))
        except BaseException as exc:
            # Only on failure: after the rename there is nothing to remove (an unlink
            # per object that must fail cost a tenth of adding small files).
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                _raise_space(exc, self.root)
            raise

    def _hidden(self, digest: str) -> str:
        """A temporary name beside the object, hidden from iter_digests."""
        return f"{self._base_name}/{digest[:2]}/.{digest[2:12]}.{os.urandom(4).hex()}.part"

    def partial_writes(self) -> list[Path]:
        """Temporary files left by interrupted writes (never visible as objects)."""
        found = [p for p in self._tmp.iterdir()] if self._tmp.is_dir() else []
        if self._base.is_dir():
            found += [p for d in self._base.iterdir() if d.is_dir() for p in d.glob(".*.part")]
        return found

    def put_fetched(self, digest: str, fetch: Callable[[str], None]) -> None:
        """Store an object fetched from elsewhere: fetch(tmp_path) writes it, lockstep checks
        that the bytes hash to digest before the object becomes visible."""
        from lockstep.errors import ObjectCorrupt
        from lockstep.objects.hashing import hash_file

        self.path(digest)  # refuses a malformed digest before anything is written

        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="fetch-")
        os.close(fd)
        tmp = Path(name)
        try:
            fetch(name)
            actual, _ = hash_file(tmp)
            if actual != digest:
                raise ObjectCorrupt(digest, actual)
            os.chmod(tmp, _READ_ONLY)
            target = self.path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def sync(self) -> None:
        """Make every object written so far durable (one call for a whole batch)."""
        os.sync()

    def link(
        self, digest: str, target: str | Path, strategies: tuple[str, ...], *, replace: bool = True
    ) -> str:
        """Materialise an object at target by the first strategy that works here.

        reflink shares blocks copy-on-write; hardlink shares the read-only object
        (an in-place edit fails instead of corrupting the store); copy is a copy.
        A file already at target is replaced, never written through; replace=False
        says the caller saw none there (it saves a system call per file).
        """
        source = str(self.path(digest)) if not _well_formed(digest) else self._name(digest)
        if replace:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
        for strategy in strategies:
            if (strategy, -1) in self._unsupported:
                continue
            try:
                try:
                    _place(source, target, strategy)
                except FileExistsError:  # appeared after all (or a symlink the scan skipped)
                    os.unlink(target)
                    _place(source, target, strategy)
                if strategy == "copy":
                    os.chmod(target, 0o644)
                return strategy
            except OSError as exc:
                if not os.path.isfile(source):
                    raise ObjectMissing(digest) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)  # nothing partial left behind
                if strategy == "copy":
                    _raise_space(exc, Path(target).parent)
                    raise
                if exc.errno in _UNSUPPORTED:  # the object store is one device: -1
                    self._unsupported.add((strategy, -1))
        raise UsageError(f"none of the link strategies {strategies} worked for {target}")

    def publish(self, digests: Iterable[str]) -> None:
        """Make digests available where the records naming them are kept, before they
        are recorded: here they already are (a server's client uploads them)."""

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise ObjectMissing(digest) from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as handle:
            return handle.read()

    def iter_digests(self) -> Iterator[str]:
        if not self._base.is_dir():
            return
        for prefix in sorted(self._base.iterdir()):
            if prefix.is_dir() and len(prefix.name) == 2:
                for entry in sorted(prefix.iterdir()):
                    if not entry.name.startswith("."):  # in-progress writes are hidden
                        yield prefix.name + entry.name

    @contextlib.contextmanager
    def _temporary(self) -> Iterator[tuple[BinaryIO, Path]]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="incoming-")
        tmp_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, tmp_path
        except OSError as exc:
            _raise_space(exc, self.root)
            raise
        finally:
            tmp_path.unlink(missing_ok=True)  # committed objects were renamed away

    def _commit(self, handle: BinaryIO, tmp_path: Path, digest: str) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        os.chmod(tmp_path, _READ_ONLY)
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Same content, same name: if another writer got there first, either file is right.
        os.replace(tmp_path, target)


def _raise_space(exc: OSError, where: Path) -> None:
    """Out of space (or over a file-size or quota limit): one clear error instead."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        raise StoreError(
            f"no space left to write under {where} ({os.strerror(exc.errno or 0)}); "
            "free space and try again; nothing partial was kept"
        ) from None


@dataclass(frozen=True)
class SourceFile:
    """A file as a scan saw it, before it was hashed: what storing it is checked against."""

    path: str
    device: int
    size: int
    mtime_ns: int
    mode: int


def _changed(source: SourceFile) -> bool:
    now = os.stat(source.path)
    return (now.st_size, now.st_mtime_ns) != (source.size, source.mtime_ns)


def _place(source: str | Path, target: str | Path, strategy: str) -> None:
    """Make target (which must not exist) hold source's bytes by one strategy: reflink,
    hardlink or copy. Never opens an existing target: it could be a link to an object."""
    if strategy == "reflink":
        _reflink(source, target)
    elif strategy == "hardlink":
        os.link(source, target)
    elif strategy == "copy":
        _copy(source, target)
    else:
        raise UsageError(f"unknown link strategy {strategy!r}; use reflink, hardlink or copy")


def _reflink(source: str | Path, target: str | Path) -> None:
    import fcntl

    with open(source, "rb") as src, open(target, "xb") as dst:
        fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())


def _copy(source: str | Path, target: str | Path) -> None:
    with open(source, "rb") as src, open(target, "xb") as dst:
        if sys.platform == "linux":  # in the kernel, as shutil.copyfile does
            size, offset = os.fstat(src.fileno()).st_size, 0
            while offset < size:
                sent = os.sendfile(dst.fileno(), src.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        else:
            shutil.copyfileobj(src, dst, 1 << 20)


def _well_formed(digest: object) -> bool:
    """A digest this store could hold: 64 lowercase hex characters (cheap: a hot path)."""
    return isinstance(digest, str) and len(digest) == 64 and not digest.strip(_HEX)


_HEX = "0123456789abcdef"

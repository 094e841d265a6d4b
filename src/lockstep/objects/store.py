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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lockstep.errors import ObjectMissing, StoreError

ALGORITHM = "blake3"
_CHUNK = 1 << 20
_READ_ONLY = 0o444


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

    def path(self, digest: str) -> Path:
        return self._base / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

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
            if exc.errno == errno.ENOSPC:
                raise StoreError(
                    f"no space left on the device of {self.root}; free space and try again"
                ) from None
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

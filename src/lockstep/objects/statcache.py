"""A local cache of (device, inode, size, mtime_ns) -> digest, so unchanged files are never
read again. It lives in its own SQLite file under the store: it describes this machine's
files, not shared metadata, so it stays local even when the metadata is in PostgreSQL.
The standard library's sqlite3 suffices for a single table read and written in batches.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

StatKey = tuple[int, int, int, int]  # device, inode, size, mtime_ns


def stat_key(stat: os.stat_result) -> StatKey:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class StatCache:
    def __init__(self, path: Path) -> None:
        self.read_only = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(path.parent)
            self._open(path)
        except (OSError, sqlite3.OperationalError):
            # A read-only store: read what the cache knows, learn nothing new (a cache
            # only saves reading files again).
            self.read_only = True
            self._db = sqlite3.connect("file::memory:", isolation_level=None, uri=True)
            self._db.execute(
                "CREATE TABLE stat_cache (path TEXT PRIMARY KEY, dev INTEGER, "
                "ino INTEGER, size INTEGER, mtime_ns INTEGER, digest TEXT)"
            )
            if path.is_file():
                try:
                    self._db.execute("ATTACH DATABASE ? AS known", (f"file:{path}?mode=ro",))
                    self._db.execute("INSERT INTO stat_cache SELECT * FROM known.stat_cache")
                    self._db.execute("DETACH DATABASE known")
                except sqlite3.Error:
                    pass  # unreadable too: start empty

    def _open(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        # Two processes creating the cache at once: switching to WAL does not wait on the
        # busy timeout, so the loser retries (only ever on a new cache file).
        deadline = time.monotonic() + 60
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise  # not a race with another creator: read-only, damaged, ...
                time.sleep(0.02)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS stat_cache (path TEXT PRIMARY KEY, dev INTEGER, "
            "ino INTEGER, size INTEGER, mtime_ns INTEGER, digest TEXT)"
        )

    def lookup(self, prefix: str) -> dict[str, tuple[StatKey, str]]:
        """Every cached entry under a directory (or one file), in one query."""
        rows = self._db.execute(
            "SELECT path, dev, ino, size, mtime_ns, digest FROM stat_cache "
            "WHERE path = ? OR (path >= ? AND path < ?)",
            (prefix, prefix + os.sep, prefix + chr(ord(os.sep) + 1)),
        )
        return {r[0]: ((r[1], r[2], r[3], r[4]), r[5]) for r in rows}

    def update(self, entries: Iterable[tuple[str, StatKey, str]]) -> None:
        rows = [(path, *key, digest) for path, key, digest in entries]
        if not rows:
            return
        with self._db:  # one transaction for the batch
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?, ?)", rows
            )

    def close(self) -> None:
        self._db.close()

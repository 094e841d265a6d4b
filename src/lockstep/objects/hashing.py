"""BLAKE3 digests of files, multithreaded and memory-mapped for large ones."""

from __future__ import annotations

import os
from pathlib import Path

# Below this size a plain read beats mapping the file and starting threads.
_MMAP_THRESHOLD = 1 << 20


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The hex BLAKE3 digest and the size of a file."""
    from blake3 import blake3

    file_path = Path(path)
    size = file_path.stat().st_size
    if size >= _MMAP_THRESHOLD:
        hasher = blake3(max_threads=blake3.AUTO)
        hasher.update_mmap(str(file_path))
    else:
        hasher = blake3(file_path.read_bytes())
    return str(hasher.hexdigest()), size

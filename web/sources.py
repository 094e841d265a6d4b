"""The digest of the hub's sources, kept beside the built files: a test recomputes it,
so built assets that do not match their sources fail the suite (run make hub)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
STAMP = WEB.parent / "src" / "lockstep" / "hub" / "assets" / "SOURCES"
_FILES = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts")


def digest() -> str:
    """SHA-256 over every source file's path and bytes, in path order."""
    paths = [WEB / name for name in _FILES] + sorted((WEB / "src").rglob("*"))
    total = hashlib.sha256()
    for path in paths:
        if path.is_file():
            total.update(path.relative_to(WEB).as_posix().encode() + b"\0")
            total.update(path.read_bytes() + b"\0")
    return total.hexdigest()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python web/sources.py --write")
    STAMP.write_text(digest() + "\n")

"""Record which files a Python process opens for reading and writing (an audit hook).

Standard library only (the child bootstrap loads it by path). The hook keeps
the raw path and whether it was read or written; filtering (project files
only, no interpreter or site-packages files) happens once at exit, so each
``open`` costs a dictionary update and nothing more.
"""

from __future__ import annotations

import contextlib
import os
import sys

# Not `from typing import ...`: importing typing costs the bootstrap ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

READ = 1
WRITE = 2
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class FileRecorder:
    """Accumulates ``{absolute path: READ | WRITE}`` from ``open`` audit events."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.enabled = True

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not self.enabled:
            return
        path, mode, flags = args
        if path.__class__ is not str:
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            elif isinstance(path, os.PathLike):
                path = os.fspath(path)
            else:
                return  # a file descriptor: nothing to name
            if not isinstance(path, str):
                return
        if mode is None:
            kind = WRITE if flags & _WRITE_FLAGS else READ
            if flags & os.O_RDWR:
                kind |= READ
        else:
            kind = WRITE if ("w" in mode or "a" in mode or "x" in mode) else READ
            if "+" in mode:
                kind |= READ | WRITE
        if path[:1] != "/":
            path = os.path.join(os.getcwd(), path)
        self.seen[path] = self.seen.get(path, 0) | kind

    def files(self, root: str, ignore: list[str]) -> dict[str, int]:
        """Regular files under root, outside ignored directories, as project-relative paths."""
        root = os.path.realpath(root)
        ignored = [os.path.realpath(p) for p in ignore if p]
        out: dict[str, int] = {}
        for raw, kind in list(self.seen.items()):
            path = os.path.realpath(raw)
            if not path.startswith(root + os.sep):
                continue
            if any(path == d or path.startswith(d + os.sep) for d in ignored):
                continue
            if "__pycache__" in path or not os.path.isfile(path):
                continue
            relative = os.path.relpath(path, root)
            out[relative] = out.get(relative, 0) | kind
        return out


def default_ignores() -> list[str]:
    """The interpreter's own trees: the stdlib, site-packages, the environment itself."""
    import site
    import sysconfig

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(sysconfig.get_paths()[key])
    try:
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    except AttributeError:  # virtualenv's old site module
        pass
    return sorted(p for p in paths if p)


def install() -> FileRecorder:
    """Start recording this process's opens (audit hooks cannot be removed; disable instead)."""
    recorder = FileRecorder()
    sys.addaudithook(recorder.hook)
    return recorder

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


# Read outside the project, but never data: the system, caches and settings of tools.
_SYSTEM_PREFIXES = (
    "/proc/",
    "/sys/",
    "/dev/",
    "/etc/",
    "/usr/",
    "/lib/",
    "/lib64/",
    "/bin/",
    "/sbin/",
    "/run/",
    "/var/lib/",
    "/var/cache/",
    "/snap/",
)
_HOME_TOOL_DIRS = (".cache", ".config", ".local", ".matplotlib", ".ipython", ".jupyter", ".nv")
_CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".pyx", ".pxd", ".pth", ".so", ".pyd", ".dll", ".dylib")
# Compiler and kernel caches that tools keep in the temporary directory or elsewhere.
_TOOL_CACHE_PARTS = ("torchinductor_", ".triton", "triton_", "torch_extensions", "numba_cache")
MAX_OUTSIDE = 1000


class FileRecorder:
    """Accumulates ``{absolute path: READ | WRITE}`` from ``open`` audit events.

    With a preimage directory, a project file that this process read and then opens
    for writing (or opens to update or append) is first copied there: its content when
    first opened is an input of the run, and a rerun must start from it.
    """

    def __init__(
        self,
        root: str | None = None,
        preimage_dir: str | None = None,
        announce: str | None = None,
    ) -> None:
        self.seen: dict[str, int] = {}
        # Where to name a metric log (TensorBoard events, metrics.csv) the moment it is
        # first opened for writing: `lockstep run` reads it while the command runs.
        self.announce = announce
        self.enabled = True
        self.root = os.path.realpath(root) + os.sep if root else None
        self.preimage_dir = preimage_dir
        self.preimages: dict[str, str] = {}  # absolute path -> saved copy

    def before_write(self, path: str) -> None:
        """A write is about to replace path's content: keep what it held if it was read."""
        path = os.path.normpath(os.path.join(os.getcwd(), path))
        if self.preimage_dir is None or self.root is None or path in self.preimages:
            return
        if not self.seen.get(path, 0) & READ:
            return
        real = os.path.realpath(path)
        if not real.startswith(self.root) or not os.path.isfile(real):
            return
        self.enabled = False  # the copy's own opens are lockstep's, not the program's
        try:
            import shutil

            target = os.path.join(self.preimage_dir, f"{len(self.preimages)}.bin")
            os.makedirs(self.preimage_dir, exist_ok=True)
            shutil.copyfile(real, target)
            self.preimages[path] = target
        except OSError:
            pass  # the run goes on; the file is then recorded as an output only
        finally:
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
            path = os.path.normpath(os.path.join(os.getcwd(), path))
        before = self.seen.get(path, 0)
        if kind & WRITE and self.preimage_dir is not None:
            if kind & READ and not before and os.path.isfile(path):
                before = READ  # r+ or a+ of an existing file: it reads what was there
                self.seen[path] = READ
            if before & READ:
                self.before_write(path)
        if kind & WRITE and not before & WRITE and self.announce is not None:
            name = path.rpartition("/")[2]
            if name == "metrics.csv" or name.startswith("events.out.tfevents."):
                self._announce(path)
        self.seen[path] = before | kind

    def _announce(self, path: str) -> None:
        if self.announce is None:
            return
        self.enabled = False  # this open is lockstep's own
        try:
            fd = os.open(self.announce, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (path + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # read when the run ends instead
        finally:
            self.enabled = True

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

    def saved_preimages(self, root: str) -> dict[str, str]:
        """{project-relative path: saved copy} for files read, then rewritten."""
        root = os.path.realpath(root)
        return {
            os.path.relpath(os.path.realpath(path), root): copy
            for path, copy in self.preimages.items()
        }

    def outside(self, root: str, ignore: list[str], home: str | None = None) -> list[str]:
        """Data files read (never written) outside the project: absolute real paths."""
        root = os.path.realpath(root) + os.sep
        ignored = [os.path.realpath(p) + os.sep for p in ignore if p]
        if home:
            ignored += [os.path.join(os.path.realpath(home), d) + os.sep for d in _HOME_TOOL_DIRS]
        found: set[str] = set()
        for raw, kind in list(self.seen.items()):
            if kind & WRITE:
                continue
            path = os.path.realpath(raw)
            if path.startswith(root) or path.startswith(_SYSTEM_PREFIXES):
                continue
            if path.endswith(_CODE_SUFFIXES) or "__pycache__" in path:
                continue
            if any(part.startswith(_TOOL_CACHE_PARTS) for part in path.split(os.sep)):
                continue
            if any(path.startswith(d) for d in ignored) or not os.path.isfile(path):
                continue
            found.add(path)
            if len(found) >= MAX_OUTSIDE:
                break
        return sorted(found)


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


def install(
    root: str | None = None, preimage_dir: str | None = None, announce: str | None = None
) -> FileRecorder:
    """Start recording this process's opens (audit hooks cannot be removed; disable instead)."""
    recorder = FileRecorder(root, preimage_dir, announce)
    sys.addaudithook(recorder.hook)
    return recorder

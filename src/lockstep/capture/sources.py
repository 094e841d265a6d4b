"""The project's source files outside git: by extension, skipping environments, with a cap."""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_SUFFIXES = frozenset(
    {
        ".py",
        ".pyx",
        ".pxd",
        ".ipynb",
        ".sh",
        ".toml",
        ".cfg",
        ".ini",
        ".yaml",
        ".yml",
        ".json",
        ".txt",
        ".md",
        ".r",
        ".jl",
        ".c",
        ".cc",
        ".cpp",
        ".h",
        ".hpp",
        ".cu",
        ".rs",
        ".go",
        ".java",
        ".scala",
        ".sql",
        ".lock",
        ".mk",
    }
)
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".lockstep",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "build",
        "dist",
        ".ipynb_checkpoints",
        "site-packages",
    }
)


def skipped_directory(name: str) -> bool:
    """Directories that hold tools' state, caches or environments, never project files."""
    return name in _SKIP_DIRS


def is_environment(path: Path) -> bool:
    """A directory with its own interpreter is an environment, not code or data."""
    return (path / "pyvenv.cfg").exists()


def source_files(root: Path, *, max_files: int) -> tuple[list[str], bool]:
    """Relative paths of source files under root (sorted) and whether the cap cut the list."""
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not skipped_directory(d) and not is_environment(Path(directory) / d)
        )
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in SOURCE_SUFFIXES or name in (
                "Makefile",
                "Dockerfile",
            ):
                found.append(os.path.relpath(os.path.join(directory, name), root))
                if len(found) > max_files:
                    return sorted(found[:max_files]), True
    return sorted(found), False

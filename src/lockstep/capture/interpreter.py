"""The Python interpreter and the project's lock files."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

LOCK_FILE_PATTERNS = (
    "requirements*.txt",
    "requirements/*.txt",
    "constraints*.txt",
    "poetry.lock",
    "uv.lock",
    "Pipfile",
    "Pipfile.lock",
    "pdm.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
)


def capture_interpreter() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "platform": platform.platform(),
        "build": " ".join(platform.python_build()),
        "compiler": platform.python_compiler(),
    }


def lock_files(root: Path) -> list[str]:
    """Lock and requirement files at the project root, relative paths, sorted."""
    found = {
        path.relative_to(root).as_posix()
        for pattern in LOCK_FILE_PATTERNS
        for path in root.glob(pattern)
        if path.is_file()
    }
    return sorted(found)

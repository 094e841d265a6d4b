"""``lockstep rerun --env recreate``: a fresh virtual environment with the recorded pins."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lockstep.core.records import RunRecord
from lockstep.errors import RebuildError
from lockstep.reproduce.environment import requirement_lines

_PYTHON = re.compile(r"python(\d+(\.\d+)*)?$")


def find_python(version: str) -> str:
    """An interpreter of the recorded major.minor version."""
    if platform.python_version_tuple()[:2] == tuple(version.split(".")[:2]):
        return sys.executable
    major_minor = ".".join(version.split(".")[:2])
    candidate = shutil.which(f"python{major_minor}")
    if candidate is None:
        raise RebuildError(
            f"the run used Python {version} and no python{major_minor} is on PATH; install it, "
            "or rerun with --env current"
        )
    return candidate


def _install(python: Path, requirements: Sequence[str]) -> tuple[bool, str]:
    uv = shutil.which("uv")
    command = (
        [uv, "pip", "install", "--python", str(python)]
        if uv
        else [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    )
    result = subprocess.run([*command, *requirements], capture_output=True, text=True, check=False)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    return result.returncode == 0, last


def recreate(
    record: RunRecord, target: Path, notify: Callable[[str], None]
) -> tuple[Path, list[str]]:
    """Build the environment at target; returns its bin directory and what could not be done."""
    environment = record.sections.get("environment", {})
    version = environment.get("interpreter", {}).get("version")
    if not version:
        raise RebuildError(f"run {record.name} has no recorded Python version")
    python = find_python(version)
    notify(f"creating a virtual environment with {python} at {target}")
    subprocess.run([python, "-m", "venv", str(target)], check=True, capture_output=True)
    venv_python = target / "bin" / "python"
    lines, problems = requirement_lines(record)
    if lines:
        notify(f"installing {len(lines)} pinned packages")
        ok, _ = _install(venv_python, lines)
        if not ok:
            # Install one by one to name exactly what cannot be had.
            for line in lines:
                installed, message = _install(venv_python, [line])
                if not installed:
                    problems.append(f"cannot install {line}: {message}")
    for package in environment.get("packages") or []:
        url = package.get("url") or ""
        if package.get("editable") and url.startswith("file://"):
            source = url.removeprefix("file://")
            if Path(source).is_dir():
                installed, message = _install(venv_python, ["--no-deps", "-e", source])
                if not installed:
                    problems.append(f"cannot install {package['name']} from {source}: {message}")
            else:
                problems.append(f"{package['name']} was installed from {source}, not here")
    return target / "bin", problems


def command_in(argv: Sequence[str], bin_dir: Path) -> tuple[str, ...]:
    """The command with a Python interpreter replaced by the environment's."""
    first = os.path.basename(argv[0])
    if _PYTHON.match(first):
        return (str(bin_dir / "python"), *argv[1:])
    return tuple(argv)

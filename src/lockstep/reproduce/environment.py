"""A recorded environment as a pinned requirements file or a self-contained Dockerfile."""

from __future__ import annotations

import json
from typing import Any

from lockstep.core.records import RunRecord
from lockstep.errors import UsageError

# Installers, not dependencies: pinned by the image or the virtual environment itself.
_SKIP = frozenset({"pip", "lockstep-bootstrap"})
# Host-specific paths that would be wrong anywhere else.
_HOST_VARIABLES = frozenset(
    {
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "LANG",
        "LC_ALL",
        "TZ",
    }
)


def _environment(record: RunRecord) -> dict[str, Any]:
    environment = record.sections.get("environment")
    if not isinstance(environment, dict):
        raise UsageError(
            f"run {record.name} has no recorded environment; record runs with `lockstep run`"
        )
    return environment


def requirement_lines(record: RunRecord) -> tuple[list[str], list[str]]:
    """Pinned requirement lines, and notes on packages that cannot be pinned from an index."""
    packages = _environment(record).get("packages")
    if not isinstance(packages, list):
        reason = (packages or {}).get("unavailable", "not recorded")
        raise UsageError(f"run {record.name} has no package list ({reason})")
    lines: list[str] = []
    notes: list[str] = []
    for package in packages:
        name, version = package["name"], package["version"]
        if name in _SKIP:
            continue
        if package.get("editable"):
            notes.append(
                f"{name} {version} was an editable install of {package.get('url')}; "
                "install it from that checkout"
            )
        elif package.get("vcs") and package.get("url") and package.get("commit"):
            lines.append(f"{name} @ {package['vcs']}+{package['url']}@{package['commit']}")
        elif package.get("url"):
            lines.append(f"{name} @ {package['url']}")
        else:
            if "+" in version:
                notes.append(
                    f"{name}=={version} is a local build; its index (for example "
                    "PyTorch's CPU or CUDA wheel index) must be given to pip"
                )
            lines.append(f"{name}=={version}")
    return lines, notes


def requirements_txt(record: RunRecord) -> str:
    lines, notes = requirement_lines(record)
    python = _environment(record).get("interpreter", {}).get("version", "?")
    header = [
        f"# The Python packages of run {record.name} ({record.id}), recorded by lockstep.",
        f"# Python {python}.",
    ]
    header += [f"# note: {n}" for n in notes]
    return "\n".join([*header, *lines]) + "\n"


def dockerfile(record: RunRecord) -> str:
    """A Dockerfile (BuildKit) with the recorded Python, pins, variables and command."""
    environment = _environment(record)
    python = environment.get("interpreter", {}).get("version")
    if not python:
        raise UsageError(f"run {record.name} has no recorded Python version")
    lines, notes = requirement_lines(record)
    variables = {
        k: v for k, v in environment.get("variables", {}).items() if k not in _HOST_VARIABLES
    }
    seed = record.sections.get("seed", {})
    if seed.get("pythonhashseed"):
        variables["PYTHONHASHSEED"] = str(seed["pythonhashseed"])
    command = record.sections.get("command", {}).get("argv")
    out = [
        "# syntax=docker/dockerfile:1",
        f"# Rebuilds the environment of run {record.name} ({record.id}), recorded by lockstep.",
        *[f"# note: {n}" for n in notes],
        f"FROM python:{python}-slim",
        "WORKDIR /app",
        "COPY <<'REQUIREMENTS' /tmp/requirements.txt",
        *lines,
        "REQUIREMENTS",
        "RUN pip install --no-cache-dir -r /tmp/requirements.txt",
        "COPY . /app",
    ]
    out += [f"ENV {k}={json.dumps(v)}" for k, v in sorted(variables.items())]
    cwd = record.sections.get("command", {}).get("cwd")
    if isinstance(cwd, str) and cwd not in ("", ".") and not cwd.startswith("/"):
        out.append(f"WORKDIR /app/{cwd}")
    if command:
        out += _command_lines(record, [str(x) for x in command])
    return "\n".join(out) + "\n"


def _command_lines(record: RunRecord, argv: list[str]) -> list[str]:
    """The recorded command, through `lockstep run` with the recorded seed where the image
    has lockstep (its bootstrap is what seeds the generators); else says why not."""
    seed = record.sections.get("seed", {}).get("value")
    deterministic = bool(record.sections.get("determinism", {}).get("requested"))
    packages = _environment(record).get("packages") or []
    has_lockstep = any(
        isinstance(p, dict) and str(p.get("name", "")).lower() == "lockstep" for p in packages
    )
    if has_lockstep and isinstance(seed, int):
        wrapped = ["lockstep", "run", "--seed", str(seed)]
        if deterministic:
            wrapped.append("--deterministic")
        return [f"CMD {json.dumps([*wrapped, '--', *argv])}"]
    return [
        "# The command runs without `lockstep run`: lockstep is not among the recorded "
        f"packages, so the recorded seed {seed} does not reach random, NumPy or torch here. "
        "Install lockstep in the image and prefix the command with "
        f"`lockstep run --seed {seed} --` to seed them.",
        f"CMD {json.dumps(argv)}",
    ]

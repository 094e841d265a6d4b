"""Installed Python distributions with exact versions and how each was installed.

Standard library only (the child bootstrap loads it by path). Names and versions
come from the ``name-version.dist-info`` directory names on ``sys.path`` (the
metadata files are parsed only where a name lacks them), which lists a full
environment in a few milliseconds instead of a ``pip freeze`` process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any


def _read(directory: str, name: str) -> str | None:
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _origin(directory: str) -> dict[str, Any]:
    """Editable installs, direct URLs and VCS commits from PEP 610's direct_url.json."""
    text = _read(directory, "direct_url.json")
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    origin: dict[str, Any] = {"url": data.get("url")}
    if data.get("dir_info", {}).get("editable"):
        origin["editable"] = True
    vcs = data.get("vcs_info")
    if vcs:
        origin["vcs"] = vcs.get("vcs")
        origin["commit"] = vcs.get("commit_id")
    return origin


def _name_version(directory: str, entry: str) -> tuple[str, str] | None:
    stem = entry.rsplit(".", 1)[0]
    name, sep, version = stem.partition("-")
    if sep and version:
        return name, version
    from email.parser import HeaderParser

    text = _read(directory, "METADATA") or _read(directory, "PKG-INFO")
    if not text:
        return None
    headers = HeaderParser().parsestr(text)
    if not headers.get("Name") or not headers.get("Version"):
        return None
    return str(headers["Name"]), str(headers["Version"])


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_distributions(paths: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every distribution on the path (default ``sys.path``), sorted by normalised name."""
    found: dict[str, dict[str, Any]] = {}
    for entry_path in sys.path if paths is None else paths:
        base = entry_path or os.curdir
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith((".dist-info", ".egg-info")) or not entry.is_dir():
                continue
            parsed = _name_version(entry.path, entry.name)
            if parsed is None:
                continue
            name, version = parsed
            key = normalise(name)
            if key in found:
                continue  # the first on the path is the one imported
            record: dict[str, Any] = {"name": key, "version": version}
            installer = _read(entry.path, "INSTALLER")
            if installer:
                record["installer"] = installer.strip()
            record.update(_origin(entry.path))
            found[key] = record
    return [found[k] for k in sorted(found)]

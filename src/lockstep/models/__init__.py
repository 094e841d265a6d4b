"""Model versions with their lineage: ``lockstep.models.register`` and ``lockstep.models.get``.

Importing this package is as light as importing lockstep: the store opens on first call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def register(
    name: str,
    path: str | os.PathLike[str],
    aliases: Sequence[str] = (),
    message: str = "",
) -> str:
    """Register a file or folder the active run wrote as a new version of model name;
    returns its reference (``name@v3``). See ``lockstep.models.api.register``."""
    from lockstep.models.api import register as _register

    return _register(name, path, aliases=aliases, message=message)


def get(ref: str) -> Path:
    """A model version (``name@production``, ``name@v3``, ``name``) as a local path,
    recorded as an input of the active run. See ``lockstep.models.api.get``."""
    from lockstep.models.api import get as _get

    return _get(ref)

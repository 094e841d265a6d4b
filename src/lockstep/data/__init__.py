"""Datasets versioned by content on top of the object store and the metadata store."""

from __future__ import annotations

from pathlib import Path


def use(ref: str) -> Path:
    """A dataset version (``name@v3``, ``name@golden``, ``name``) as a local path, recorded
    as an input of the active run; see ``lockstep.data.api.use``."""
    from lockstep.data.api import use as _use

    return _use(ref)

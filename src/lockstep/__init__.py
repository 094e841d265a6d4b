"""Lockstep: reproducible machine-learning runs, captured, tracked, rerun and explained.

Importing lockstep is cheap and has no side effects: SQLAlchemy, NumPy and any
framework load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "LockstepError",
    "MetricHistory",
    "Run",
    "RunView",
    "__version__",
    "active_run",
    "get_run",
    "runs",
    "seed_everything",
    "start",
]

# name -> module that defines it; resolved on first attribute access (PEP 562).
_LAZY = {
    "LockstepError": "lockstep.errors",
    "MetricHistory": "lockstep.tracking.history",
    "Run": "lockstep.tracking.run",
    "RunView": "lockstep.tracking.query",
    "active_run": "lockstep.tracking.api",
    "get_run": "lockstep.tracking.api",
    "runs": "lockstep.tracking.api",
    "seed_everything": "lockstep.determinism.api",
    "start": "lockstep.tracking.api",
}

if TYPE_CHECKING:
    from lockstep.determinism.api import seed_everything
    from lockstep.errors import LockstepError
    from lockstep.tracking.api import active_run, get_run, runs, start
    from lockstep.tracking.history import MetricHistory
    from lockstep.tracking.query import RunView
    from lockstep.tracking.run import Run


# Subpackages reachable as attributes (``lockstep.models.get``) without importing them first.
_SUBPACKAGES = ("data", "models")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"lockstep.{name}")
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lockstep' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

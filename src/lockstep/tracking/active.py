"""The runs this process has open, the innermost last, and finishing them at exit."""

from __future__ import annotations

import atexit
import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockstep.tracking.run import Run

_stack: list[Run] = []
_uncaught: list[tuple[type[BaseException], BaseException, TracebackType | None]] = []
_hooked = False


def current() -> Run | None:
    return _stack[-1] if _stack else None


def push(run: Run) -> None:
    _ensure_hooks()
    _stack.append(run)


def remove(run: Run) -> None:
    if run in _stack:
        _stack.remove(run)


def _ensure_hooks() -> None:
    """On first use: remember uncaught exceptions and finish open runs at exit."""
    global _hooked
    if _hooked:
        return
    _hooked = True
    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        _uncaught.append((exc_type, exc, tb))
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_open_runs)


def _finish_open_runs() -> None:
    from lockstep.tracking.run import outcome

    exc_type, exc, tb = _uncaught[-1] if _uncaught else (None, None, None)
    for run in reversed(list(_stack)):
        status, error = outcome(run.was_signalled(), exc_type, exc, tb)
        run.finish(status, error)

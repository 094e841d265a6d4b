"""The value every gatherer returns when it cannot gather: a reason, never an exception."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Unavailable:
    """A fact lockstep could not capture, and why."""

    reason: str

    def to_json(self) -> dict[str, str]:
        return {"unavailable": self.reason}


def gather(gatherer: Callable[[], T]) -> T | Unavailable:
    """Run one gatherer; any failure becomes Unavailable so the run always goes on."""
    try:
        return gatherer()
    except Exception as exc:
        return Unavailable(reason=f"{type(exc).__name__}: {exc}")


def as_json(value: Any) -> Any:
    return value.to_json() if isinstance(value, Unavailable) else value

"""The plain values metadata stores hand out and take, importable without SQLAlchemy (a
server's client never loads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockstep.core.records import MetricSummary


@dataclass(frozen=True, kw_only=True)
class MetricColumns:
    """One flush of one metric key: parallel little-endian arrays as bytes."""

    key: str
    steps: bytes  # int64
    values: bytes  # float64
    times: bytes  # float64
    count: int
    first_step: int
    last_step: int


@dataclass(frozen=True, kw_only=True)
class LiveRun:
    """What liveness checks need to know about a run still marked running."""

    id: str
    host: str
    pid: int
    pid_start: float | None
    heartbeat_at: float


@dataclass(frozen=True, kw_only=True)
class StoredChunks:
    """The chunks of one metric series, in order."""

    steps: list[bytes]
    values: list[bytes]
    times: list[bytes]


def merge_summary(old: MetricSummary | None, key: str, steps: Any, values: Any) -> MetricSummary:
    """The summary after appending values (NaN is skipped by min and max)."""
    import numpy as np

    low = float(np.fmin.reduce(values))
    high = float(np.fmax.reduce(values))
    if old is not None:
        low = float(np.fmin(old.min, low))
        high = float(np.fmax(old.max, high))
        count = old.count + len(values)
    else:
        count = len(values)
    return MetricSummary(
        key=key, last=float(values[-1]), last_step=int(steps[-1]), min=low, max=high, count=count
    )

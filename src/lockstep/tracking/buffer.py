"""The in-memory metric buffer behind ``Run.log``: typed arrays per set of keys.

Each call appends its step, time and values to ``array.array`` columns of the
segment for its keys (``array.extend`` converts and checks every value in C),
under a lock held for a few hundred nanoseconds. The writer thread swaps the
whole buffer out in O(1) and views the arrays with NumPy without copying, so
no per-point Python work competes with the training loop.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Mapping
from typing import Any

from lockstep.errors import InvalidMetric, UsageError

_now = time.time


class Segment:
    """The calls that logged one particular tuple of keys, column by column."""

    __slots__ = ("calls", "keys", "steps", "times", "values")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.calls = array("q")  # global call order, to merge keys logged in several sets
        self.steps = array("q")
        self.times = array("d")
        self.values = array("d")  # row-major: len(keys) values per call

    def __len__(self) -> int:
        return len(self.steps)


class MetricBuffer:
    """Points logged but not yet stored; filled by the training thread, drained by the writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._segments: dict[tuple[str, ...], Segment] = {}
        self._last_keys: tuple[str, ...] | None = None
        self._last: Segment | None = None
        self._calls = 0
        self.next_step = 0

    def add(self, metrics: Mapping[str, Any], step: int | None) -> None:
        if step is None:
            step = self.next_step
        elif step.__class__ is not int:
            step = _check_step(step)
        keys = tuple(metrics)
        if not keys:
            return
        with self._lock:
            segment = self._last
            if segment is None or keys != self._last_keys:
                segment = self._segment_for(keys)
            values = segment.values
            before = len(values)
            try:
                values.extend(metrics.values())
            except (TypeError, ValueError, OverflowError):
                del values[before:]
                raise _invalid(metrics) from None
            try:
                segment.steps.append(step)
            except OverflowError:
                # Never leave the values without their step: the buffer stays aligned.
                del values[before:]
                raise UsageError(
                    f"step {step} of {', '.join(map(repr, keys))} is out of range: steps are "
                    "64-bit integers, from -2**63 to 2**63 - 1"
                ) from None
            segment.times.append(_now())
            segment.calls.append(self._calls)
            self._calls += 1
        self.next_step = step + 1

    def _segment_for(self, keys: tuple[str, ...]) -> Segment:
        segment = self._segments.get(keys)
        if segment is None:
            for key in keys:
                if not isinstance(key, str) or not key:
                    raise UsageError(f"metric keys must be non-empty strings, got {key!r}")
            if len(set(keys)) != len(keys):
                raise UsageError(f"metric keys repeat in one call: {keys!r}")
            segment = self._segments[keys] = Segment(keys)
        self._last_keys, self._last = keys, segment
        return segment

    def take(self) -> list[Segment]:
        """Everything buffered so far, leaving the buffer empty."""
        with self._lock:
            segments = list(self._segments.values())
            self._segments = {}
            self._last_keys = self._last = None
        return segments

    def __len__(self) -> int:
        """Points buffered (values, not calls)."""
        with self._lock:
            return sum(len(s.values) for s in self._segments.values())


def _invalid(metrics: Mapping[str, Any]) -> InvalidMetric:
    """The error naming the first value that is not a real number."""
    for key, value in metrics.items():
        if isinstance(value, (str, bytes, bytearray)) or value is None:
            return InvalidMetric(key, value)
        try:
            float(value)
        except (TypeError, ValueError, OverflowError):
            return InvalidMetric(key, value)
    return InvalidMetric("?", metrics)


def _check_step(step: Any) -> int:
    try:
        if isinstance(step, bool) or int(step) != step:
            raise ValueError
        return int(step)
    except (TypeError, ValueError):
        raise UsageError(f"step must be an integer, got {step!r}") from None

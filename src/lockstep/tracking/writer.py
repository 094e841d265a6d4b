"""The non-blocking metric path: an in-memory buffer and the background thread that stores it.

``Run.log`` only appends one tuple to a list; everything else (grouping into
columns per key, summaries, SQL) happens here, off the training thread, every
flush interval. Points are removed from the buffer only once stored, so a
failed write is retried at the next flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from lockstep.core.records import MetricSummary
from lockstep.meta.store import MetaStore, MetricColumns
from lockstep.tracking.buffer import MetricBuffer, Segment

log = logging.getLogger("lockstep")

# Metric points this process could not store, all runs together: `lockstep run`'s
# bootstrap reports it, so a run that lost points never ends as if it had not.
LOST_POINTS = 0

# Compaction merges a series into chunks of at most this many points (24 MiB per chunk).
COMPACT_CHUNK_POINTS = 1 << 20


def columnize(segments: Sequence[Segment]) -> dict[str, tuple[Any, Any, Any]]:
    """Per-key (steps, values, times) NumPy arrays from buffer segments, in logging order.

    A segment's values are a row-major matrix (one row per call), so each key's
    series is a column view; a key logged in several segments is merged back
    into call order.
    """
    import numpy as np

    parts: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
    for segment in segments:
        rows, width = len(segment), len(segment.keys)
        calls = np.frombuffer(segment.calls, dtype=np.int64)
        steps = np.frombuffer(segment.steps, dtype=np.int64)
        times = np.frombuffer(segment.times, dtype=np.float64)
        matrix = np.frombuffer(segment.values, dtype=np.float64).reshape(rows, width)
        for j, key in enumerate(segment.keys):
            parts.setdefault(key, []).append((calls, steps, matrix[:, j], times))
    columns: dict[str, tuple[Any, Any, Any]] = {}
    for key, pieces in parts.items():
        if len(pieces) == 1:
            _, steps, values, times = pieces[0]
        else:
            order = np.argsort(np.concatenate([p[0] for p in pieces]), kind="stable")
            steps = np.concatenate([p[1] for p in pieces])[order]
            values = np.concatenate([p[2] for p in pieces])[order]
            times = np.concatenate([p[3] for p in pieces])[order]
        columns[key] = (
            steps.astype("<i8", copy=False),
            np.ascontiguousarray(values, dtype="<f8"),
            times.astype("<f8", copy=False),
        )
    return columns


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


def brief(exc: BaseException) -> str:
    """One line for a storage error: the database's own words, not the SQL around them."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:300]


class MetricWriter:
    """Owns a run's pending points and stores them from a daemon thread."""

    def __init__(
        self,
        meta: MetaStore,
        run_id: str,
        *,
        flush_interval: float,
        heartbeat_interval: float,
    ) -> None:
        self.meta = meta
        self.run_id = run_id
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.buffer = MetricBuffer()
        # Taken from the buffer but not yet stored (a failed write is retried first).
        self._unsaved: list[Segment] = []
        self._seqs, self._summaries = meta.metric_state(run_id)
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_beat = time.monotonic()
        self._failures = 0
        self._thread = threading.Thread(target=self._loop, name="lockstep-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        # A fixed cadence (not "sleep after each write") keeps the wait of any point
        # under one interval however long a write takes.
        deadline = time.monotonic() + self.flush_interval
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            deadline += self.flush_interval
            try:
                self.flush()
                self._failures = 0
            except Exception as exc:  # never raise into training; retry next interval
                self._failures += 1
                if self._failures in (1, 10, 100):
                    log.warning("lockstep: storing metrics failed (%s); will retry", brief(exc))
            deadline = max(deadline, time.monotonic())

    def flush(self) -> int:
        """Store every buffered point now; returns how many points were written."""
        with self._flush_lock:
            self._unsaved.extend(self.buffer.take())
            now = time.time()
            if not self._unsaved:
                if time.monotonic() - self._last_beat >= self.heartbeat_interval:
                    self.meta.heartbeat(self.run_id, now)
                    self._last_beat = time.monotonic()
                return 0
            chunks: list[MetricColumns] = []
            summaries: list[MetricSummary] = []
            seqs: dict[str, int] = {}
            for key, (steps, values, times) in columnize(self._unsaved).items():
                seqs[key] = self._seqs.get(key, 0)
                chunks.append(
                    MetricColumns(
                        key=key,
                        steps=steps.tobytes(),
                        values=values.tobytes(),
                        times=times.tobytes(),
                        count=len(steps),
                        first_step=int(steps[0]),
                        last_step=int(steps[-1]),
                    )
                )
                summaries.append(merge_summary(self._summaries.get(key), key, steps, values))
            self.meta.append_metrics(self.run_id, chunks, seqs, summaries, heartbeat_at=now)
            # Only now, with the points safely stored, advance the in-memory state.
            self._unsaved.clear()
            for key, seq in seqs.items():
                self._seqs[key] = seq + 1
            for summary in summaries:
                self._summaries[summary.key] = summary
            self._last_beat = time.monotonic()
        return sum(chunk.count for chunk in chunks)

    def close(self) -> tuple[int, str]:
        """Stop the thread and store what is left (tries three times before giving up).

        Returns how many points could not be stored, and why (0 and "" when all were).
        """
        global LOST_POINTS
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        for attempt in range(3):
            try:
                self.flush()
                return 0, ""
            except Exception as exc:
                if attempt == 2:
                    lost = len(self.buffer) + sum(len(s.values) for s in self._unsaved)
                    LOST_POINTS += lost
                    log.error(
                        "lockstep: %d metric points of run %s could not be stored: %s",
                        lost,
                        self.run_id,
                        brief(exc),
                    )
                    return lost, brief(exc)
                time.sleep(0.2 * (attempt + 1))
        return 0, ""

    def compact(self) -> None:
        """Merge each series' flush-sized chunks into few large ones (fast history reads)."""
        for key, count in self.meta.chunk_counts(self.run_id).items():
            if count <= 1:
                continue
            stored = self.meta.metric_chunks(self.run_id, key)
            merged = _merge(key, stored.steps, stored.values, stored.times)
            self.meta.replace_metric_chunks(self.run_id, key, merged)
            self._seqs[key] = len(merged)


def _merge(
    key: str, steps: list[bytes], values: list[bytes], times: list[bytes]
) -> list[MetricColumns]:
    """Concatenate raw little-endian chunks into pieces of at most COMPACT_CHUNK_POINTS."""
    step_bytes, value_bytes, time_bytes = b"".join(steps), b"".join(values), b"".join(times)
    total = len(step_bytes) // 8
    merged = []
    for start in range(0, total, COMPACT_CHUNK_POINTS):
        stop = min(total, start + COMPACT_CHUNK_POINTS)
        piece = step_bytes[start * 8 : stop * 8]
        merged.append(
            MetricColumns(
                key=key,
                steps=piece,
                values=value_bytes[start * 8 : stop * 8],
                times=time_bytes[start * 8 : stop * 8],
                count=stop - start,
                first_step=int.from_bytes(piece[:8], "little", signed=True),
                last_step=int.from_bytes(piece[-8:], "little", signed=True),
            )
        )
    return merged

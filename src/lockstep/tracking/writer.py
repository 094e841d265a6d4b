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
from typing import TYPE_CHECKING, Any

from lockstep.core.records import MetricSummary
from lockstep.meta.shapes import MetricColumns, merge_summary
from lockstep.tracking.buffer import MetricBuffer, Segment

if TYPE_CHECKING:  # SQLAlchemy loads only with a SQL store
    from lockstep.meta.store import MetaStore

log = logging.getLogger("lockstep")

# Metric points this process could not store, all runs together: `lockstep run`'s
# bootstrap reports it, so a run that lost points never ends as if it had not.
LOST_POINTS = 0

# The most points one batch (one transaction) carries when the store says nothing: a
# million points are 24 MB of columns. A server's client asks for smaller batches.
MAX_BATCH_POINTS = 1_000_000


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
        new_run: bool = False,
    ) -> None:
        self.meta = meta
        self.run_id = run_id
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.buffer = MetricBuffer()
        # Taken from the buffer but not yet stored, per key in logging order (a failed
        # write is retried first).
        self._pending: dict[str, tuple[Any, Any, Any]] = {}
        # A run this process has just created holds no metrics: nothing to ask (and a
        # server that stopped answering since cannot hold it up).
        self._seqs, self._summaries = ({}, {}) if new_run else meta.metric_state(run_id)
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
        """Store every buffered point now; returns how many points were written.

        A flush is sent in parts of at most the store's ``batch_points`` (else
        MAX_BATCH_POINTS) points, each key's series sliced alike, so one request, one
        transaction and the memory behind them stay bounded however fast the program
        logs. A part that fails is retried first next time; parts already stored are never
        sent again.
        """
        import numpy as np

        with self._flush_lock:
            for key, fresh in columnize(self.buffer.take()).items():
                old = self._pending.get(key)
                self._pending[key] = (
                    fresh
                    if old is None
                    else (
                        np.concatenate([old[0], fresh[0]]),
                        np.concatenate([old[1], fresh[1]]),
                        np.concatenate([old[2], fresh[2]]),
                    )
                )
            now = time.time()
            if not self._pending:
                if time.monotonic() - self._last_beat >= self.heartbeat_interval:
                    self.meta.heartbeat(self.run_id, now)
                    self._last_beat = time.monotonic()
                return 0
            written = 0
            limit = int(getattr(self.meta, "batch_points", MAX_BATCH_POINTS))
            while self._pending:
                written += self._send_part(max(1, limit // len(self._pending)), time.time())
            self._last_beat = time.monotonic()
        return written

    def _send_part(self, per_key: int, now: float) -> int:
        """Store the first per_key points of every pending series as one batch."""
        chunks: list[MetricColumns] = []
        summaries: list[MetricSummary] = []
        seqs: dict[str, int] = {}
        for key, (steps, values, times) in self._pending.items():
            s, v, t = steps[:per_key], values[:per_key], times[:per_key]
            seqs[key] = self._seqs.get(key, 0)
            chunks.append(
                MetricColumns(
                    key=key,
                    steps=s.tobytes(),
                    values=v.tobytes(),
                    times=t.tobytes(),
                    count=len(s),
                    first_step=int(s[0]),
                    last_step=int(s[-1]),
                )
            )
            summaries.append(merge_summary(self._summaries.get(key), key, s, v))
        self.meta.append_metrics(self.run_id, chunks, seqs, summaries, heartbeat_at=now)
        # Only now, with the points safely stored, advance the in-memory state.
        for key, seq in seqs.items():
            self._seqs[key] = seq + 1
            steps, values, times = self._pending[key]
            if len(steps) <= per_key:
                del self._pending[key]
            else:
                self._pending[key] = (steps[per_key:], values[per_key:], times[per_key:])
        for summary in summaries:
            self._summaries[summary.key] = summary
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
                    lost = len(self.buffer) + sum(len(p[0]) for p in self._pending.values())
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
        """Merge each series' flush-sized chunks into few large ones (fast history reads);
        done where the store is (a server compacts without sending the series back)."""
        self.meta.compact_metrics(self.run_id)
        self._seqs, _ = self.meta.metric_state(self.run_id)

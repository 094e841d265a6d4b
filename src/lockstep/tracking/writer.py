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
from collections.abc import Mapping, Sequence
from typing import Any

from lockstep.core.records import MetricSummary
from lockstep.meta.store import MetaStore, MetricColumns

log = logging.getLogger("lockstep")

# (step, unix time, {key: number})
Point = tuple[int, float, Mapping[str, float | int]]

# Compaction merges a series into chunks of at most this many points (24 MiB per chunk).
COMPACT_CHUNK_POINTS = 1 << 20


def columnize(batch: Sequence[Point]) -> dict[str, tuple[Any, Any, Any]]:
    """Turn logged points into per-key (steps, values, times) NumPy arrays, in logging order.

    Calls that log the same keys are grouped, and each group is transposed in
    C (``zip(*rows)``); a key logged in several groups is put back in order.
    """
    import numpy as np

    groups: dict[tuple[str, ...], tuple[list[int], list[int], list[float], list[Any]]] = {}
    for index, (step, when, metrics) in enumerate(batch):
        keys = tuple(metrics)
        group = groups.get(keys)
        if group is None:
            group = groups[keys] = ([], [], [], [])
        group[0].append(index)
        group[1].append(step)
        group[2].append(when)
        group[3].append(tuple(metrics.values()))
    parts: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
    for keys, (indexes, steps, times, rows) in groups.items():
        idx = np.asarray(indexes, dtype=np.int64)
        step_arr = np.asarray(steps, dtype="<i8")
        time_arr = np.asarray(times, dtype="<f8")
        for key, column in zip(keys, zip(*rows, strict=True), strict=True):
            values = np.asarray(column, dtype="<f8")
            parts.setdefault(str(key), []).append((idx, step_arr, values, time_arr))
    columns: dict[str, tuple[Any, Any, Any]] = {}
    for key, pieces in parts.items():
        if len(pieces) == 1:
            _, steps_a, values_a, times_a = pieces[0]
        else:
            order = np.argsort(np.concatenate([p[0] for p in pieces]), kind="stable")
            steps_a = np.concatenate([p[1] for p in pieces])[order]
            values_a = np.concatenate([p[2] for p in pieces])[order]
            times_a = np.concatenate([p[3] for p in pieces])[order]
        columns[key] = (steps_a, values_a, times_a)
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
        # Appended to by the training thread; only this writer removes from the front.
        self.pending: list[Point] = []
        self._seqs, self._summaries = meta.metric_state(run_id)
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_beat = time.monotonic()
        self._failures = 0
        self._thread = threading.Thread(target=self._loop, name="lockstep-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
                self._failures = 0
            except Exception as exc:  # never raise into training; retry next interval
                self._failures += 1
                if self._failures in (1, 10, 100):
                    log.warning("lockstep: storing metrics failed (%s); will retry", exc)

    def flush(self) -> int:
        """Store every pending point now; returns how many points were written."""
        with self._flush_lock:
            count = len(self.pending)
            now = time.time()
            if count == 0:
                if time.monotonic() - self._last_beat >= self.heartbeat_interval:
                    self.meta.heartbeat(self.run_id, now)
                    self._last_beat = time.monotonic()
                return 0
            batch = self.pending[:count]
            columns = columnize(batch)
            chunks: list[MetricColumns] = []
            summaries: list[MetricSummary] = []
            seqs: dict[str, int] = {}
            for key, (steps, values, times) in columns.items():
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
            for key, seq in seqs.items():
                self._seqs[key] = seq + 1
            for summary in summaries:
                self._summaries[summary.key] = summary
            self._last_beat = time.monotonic()
            del self.pending[:count]
            points = sum(chunk.count for chunk in chunks)
        return points

    def close(self) -> None:
        """Stop the thread and store what is left (tries three times before giving up)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        for attempt in range(3):
            try:
                self.flush()
                return
            except Exception as exc:
                if attempt == 2:
                    log.error(
                        "lockstep: %d metric points of run %s could not be stored: %s",
                        len(self.pending),
                        self.run_id,
                        exc,
                    )
                time.sleep(0.2 * (attempt + 1))

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

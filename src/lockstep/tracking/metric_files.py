"""Metric logs a command writes (TensorBoard event files, CSV metric logs) read into its run
while it runs, and once more when it ends, by `lockstep run`'s process (never the
training process).

The command's Python processes name each such file the first time they open it for
writing (the bootstrap's audit hook appends its path to ``metric-files.txt`` in the
capture directory); a thread here reads what each file gained since the last look, every
interval. Files written by native code (Keras' writer) are found among the run's outputs
when it ends. A key the script also logs itself is left to the script: a key is taken
only once it has been in a file for ``grace`` seconds without reaching the store by
another way, which outlasts a logger's flush interval.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.tracking.printed_metrics import CSV_LOG_NAMES, TENSORBOARD_PREFIX, Point, csv_points

if TYPE_CHECKING:
    from lockstep.meta.store import MetaStore

ANNOUNCED = "metric-files.txt"


def is_metric_log(name: str) -> bool:
    """Whether a file's name is one of the metric logs read into runs."""
    return name in CSV_LOG_NAMES or name.startswith(TENSORBOARD_PREFIX)


@dataclass
class _Source:
    """One metric log and how far it has been read."""

    path: str  # relative to the project
    absolute: Path
    prefix: str = ""
    records: EventRecords | None = None  # a TensorBoard file, read on from where it stopped
    read: int = 0  # CSV: points already taken from the file
    points: int = 0  # stored
    started: bool = False  # read from, so its keys are named for good
    keys: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    failed: bool = False


class MetricFiles:
    """The metric logs of one run, read as they grow."""

    def __init__(
        self,
        meta: MetaStore,
        run_id: str,
        root: Path,
        capture_dir: Path,
        *,
        note: Callable[[str], None],
        interval: float = 1.0,
        grace: float = 3.0,
    ) -> None:
        self.meta = meta
        self.run_id = run_id
        self.root = root.resolve()
        self.announced = capture_dir / ANNOUNCED
        self.note = note
        self.interval = interval
        self.grace = grace
        self.sources: dict[str, _Source] = {}
        self.mine: set[str] = set()  # keys read from files into the run
        self.theirs: set[str] = set()  # keys the script logs itself
        self.first_seen: dict[str, float] = {}
        self.origin: dict[str, _Source] = {}  # the file a key was first read from
        self.held: dict[str, list[tuple[int, float, float]]] = {}  # undecided keys' points
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="lockstep-metric-files", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reading while the command runs (the final read is finish's)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def finish(self, outputs: Iterable[str]) -> list[dict[str, Any]]:
        """Read what is left, also from metric logs among the run's outputs, and say what
        each file gave (the command section keeps it)."""
        self.stop()
        self.poll([p for p in outputs if not p.startswith("/")], final=True)
        read = [s for s in sorted(self.sources.values(), key=_order) if s.points]
        if read:
            total = sum(s.points for s in read)
            self.note(
                f"lockstep: {total} metric points read from {', '.join(s.path for s in read)}"
            )
        return [
            {
                "path": s.path,
                "points": s.points,
                "keys": sorted(s.keys),
                "skipped": sorted(s.skipped),
            }
            for s in read
        ]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # the run goes on; the final read tries again
                self.note(f"lockstep: reading metric logs failed for now ({exc})")

    # reading -------------------------------------------------------------------

    def _announced(self) -> list[str]:
        try:
            text = self.announced.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            path = Path(line)
            try:
                found.append(path.resolve().relative_to(self.root).as_posix())
            except (ValueError, OSError):
                continue  # outside the project: not this run's to read
        return found

    def _add(self, relative: str) -> None:
        if relative in self.sources or not is_metric_log(Path(relative).name):
            return
        absolute = self.root / relative
        source = _Source(path=relative, absolute=absolute)
        if Path(relative).name.startswith(TENSORBOARD_PREFIX):
            # Several event files (Keras: logs/train, logs/validation) log the same tags: a
            # file's keys then name its folder below the folder the event files share.
            folders = [
                str(Path(s.path).parent)
                for s in self.sources.values()
                if Path(s.path).name.startswith(TENSORBOARD_PREFIX)
            ]
            if folders:
                shared = os.path.commonpath([*folders, str(Path(relative).parent)])
                for other in self.sources.values():
                    is_events = Path(other.path).name.startswith(TENSORBOARD_PREFIX)
                    if is_events and not other.started and not other.prefix:
                        other.prefix = _prefix(other.path, shared)
                source.prefix = _prefix(relative, shared)
        self.sources[relative] = source

    def poll(self, extra: Iterable[str] = (), *, final: bool = False) -> None:
        with self._lock:
            for relative in sorted({*self._announced(), *extra}):
                self._add(relative)
            fresh: list[Point] = []
            for source in sorted(self.sources.values(), key=_order):
                if source.failed:
                    continue
                for point in self._read(source, final):
                    source.started = True
                    fresh.append(point)
                    self.origin.setdefault(point.key, source)
            self._store(fresh, final)

    def _read(self, source: _Source, final: bool) -> list[Point]:
        if not source.absolute.is_file():
            return []
        if source.path.endswith(".csv"):
            try:
                text = source.absolute.read_text(errors="replace")
            except OSError:
                return []
            if not final:
                text = text[: text.rfind("\n") + 1]  # a row being written waits
            points = csv_points(text)
            new, source.read = points[source.read :], max(source.read, len(points))
            return new
        try:
            if source.records is None:
                source.records = EventRecords(source.absolute)
            return _scalars(source.records.read(), source.prefix)
        except ImportError:
            source.failed = True
            self.note(f"lockstep: {source.path} not read: the tensorboard package is not installed")
        except Exception as exc:  # a torn or foreign file: the run is recorded anyway
            source.failed = True
            self.note(f"lockstep: {source.path} not read ({exc})")
        return []

    def _store(self, fresh: list[Point], final: bool) -> None:
        import numpy as np

        now = time.time()
        for point in fresh:
            self.first_seen.setdefault(point.key, time.monotonic())
            if point.key in self.theirs:
                self.origin[point.key].skipped.add(point.key)
                continue
            self.held.setdefault(point.key, []).append(
                (point.step or 0, point.value, point.time if point.time is not None else now)
            )
        undecided = [k for k in self.held if k not in self.mine]
        if undecided:
            _, summaries = self.meta.metric_state(self.run_id)
            for key in undecided:
                if key in summaries:
                    self.theirs.add(key)
                    del self.held[key]
                    self.origin[key].skipped.add(key)
                elif final or time.monotonic() - self.first_seen[key] >= self.grace:
                    self.mine.add(key)
        series = {}
        for key in [k for k in self.held if k in self.mine]:
            points = self.held.pop(key)
            series[key] = (
                np.array([p[0] for p in points], dtype=np.int64),
                np.array([p[1] for p in points], dtype=np.float64),
                np.array([p[2] for p in points], dtype=np.float64),
            )
            source = self.origin[key]
            source.keys.add(key)
            source.points += len(points)
        if series:
            self.meta.append_series(self.run_id, series, now)


def _prefix(path: str, shared: str) -> str:
    folder = os.path.relpath(str(Path(path).parent), shared)
    return "" if folder == "." else folder.replace(os.sep, "/") + "/"


def _order(source: _Source) -> tuple[int, str]:
    """CSV logs first, then event files, each by path (as the run's record lists them)."""
    return (0 if source.path.endswith(".csv") else 1, source.path)


class CorruptLog(Exception):
    """A record of an event file whose checksum does not match."""


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventRecords:
    """The complete records of a TensorBoard event file (TFRecord framing: length, its
    checksum, the data, its checksum), each read once: a record still being written is
    left for the next read."""

    MAX_READ = 64 << 20  # bytes a read takes at most; the rest waits for the next

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[bytes]:
        import struct

        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.MAX_READ)
        records, pos = [], 0
        while len(data) - pos >= 12:
            (length,) = struct.unpack_from("<Q", data, pos)
            if _masked_crc(data[pos : pos + 8]) != struct.unpack_from("<I", data, pos + 8)[0]:
                raise CorruptLog(f"a damaged record at byte {self.offset + pos}")
            end = pos + 12 + length + 4
            if end > len(data):
                break
            payload = data[pos + 12 : pos + 12 + length]
            if _masked_crc(payload) != struct.unpack_from("<I", data, end - 4)[0]:
                raise CorruptLog(f"a damaged record at byte {self.offset + pos}")
            records.append(payload)
            pos = end
        self.offset += pos
        return records


# TensorFlow's dtypes a scalar summary comes in, as NumPy reads their bytes.
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2", 4: "u1", 5: "<i2", 6: "i1"}


def _tensor_scalar(tensor: Any) -> float | None:
    """A scalar tensor's value; None for anything else (images, histograms, text)."""
    import numpy as np

    if any(d.size != 1 for d in tensor.tensor_shape.dim):
        return None
    for name in ("float_val", "double_val", "int_val", "int64_val"):
        values = getattr(tensor, name)
        if len(values) == 1:
            return float(values[0])
    dtype = _DTYPES.get(tensor.dtype)
    if dtype is None or not tensor.tensor_content:
        return None
    array = np.frombuffer(tensor.tensor_content, dtype=dtype)
    return float(array[0]) if array.size == 1 else None


def _scalars(records: Iterable[bytes], prefix: str) -> list[Point]:
    """The scalar values in TensorBoard event records, at their steps and wall times
    (parsed with the tensorboard package's compiled Event message)."""
    from tensorboard.compat.proto.event_pb2 import Event

    points = []
    for record in records:
        event = Event.FromString(record)
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = float(value.simple_value)
            elif kind == "tensor":
                number = _tensor_scalar(value.tensor)
            else:
                continue
            if number is None:
                continue
            points.append(
                Point(
                    key=prefix + value.tag,
                    step=int(event.step),
                    value=number,
                    time=float(event.wall_time),
                )
            )
    return points

"""Writes a server could not take, kept on disk in order and sent when it answers again.

One append-only file of JSON lines per run under ``.lockstep/spool/``. Every write it
holds is keyed on the server (a run by its id, a metric chunk by its number), so sending
one again after a partial replay stores it once. A process killed during an outage
leaves its file; the next lockstep command on the machine sends it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("lockstep")

# Past this size (all runs together) a process warns once: an outage that long fills a
# disk eventually, and someone should know. `[server] spool_warn_mb` sets it. Memory
# stays bounded whatever the size: entries go to disk as they come, and a replay holds
# one run's file.
WARN_BYTES = 1 << 30


class Spool:
    def __init__(self, directory: Path, warn_bytes: int = WARN_BYTES) -> None:
        self.directory = directory
        self.warn_bytes = warn_bytes
        self._warned = False

    def _path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.jsonl"

    @contextlib.contextmanager
    def _locked(self, run_id: str) -> Iterator[None]:
        """One writer or replayer per run's file at a time (threads and processes)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{run_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def pending(self, run_id: str) -> bool:
        path = self._path(run_id)
        return path.exists() and path.stat().st_size > 0

    def runs(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.jsonl") if p.stat().st_size > 0)

    def append(self, run_id: str, op: str, body: dict[str, Any]) -> None:
        line = json.dumps({"op": op, "body": body}, allow_nan=False) + "\n"
        with self._locked(run_id), open(self._path(run_id), "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        if not self._warned and self.size() > self.warn_bytes:
            self._warned = True
            log.warning(
                "lockstep: the spool %s holds over %d MiB waiting for the server (set by "
                "[server] spool_warn_mb); it is sent when the server answers",
                self.directory,
                self.warn_bytes >> 20,
            )

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*.jsonl"))

    def replay(self, run_id: str, send: Callable[[str, dict[str, Any]], None]) -> bool:
        """Send the run's spooled writes in order, one line in memory at a time; True when
        none is left. A send that fails stops the replay and keeps it and what follows."""
        with self._locked(run_id):
            path = self._path(run_id)
            if not path.exists():
                return True
            sent = 0  # bytes of the file whose writes the server took
            with open(path, "rb") as handle:
                try:
                    for line in handle:
                        if line.strip():
                            entry = json.loads(line)
                            send(str(entry["op"]), dict(entry["body"]))
                        sent += len(line)
                finally:
                    handle.seek(sent)
                    if handle.read(1):
                        handle.seek(sent)
                        tmp = path.with_suffix(".tmp")
                        with open(tmp, "wb") as rest:
                            shutil.copyfileobj(handle, rest)
                        os.replace(tmp, path)
                        left = True
                    else:
                        path.unlink()
                        left = False
            return not left

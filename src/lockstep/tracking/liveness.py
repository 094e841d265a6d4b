"""Tell live runs from dead ones: pid + process start time on this host, heartbeats elsewhere."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from lockstep.core.status import RunStatus
from lockstep.meta.shapes import LiveRun

if TYPE_CHECKING:  # SQLAlchemy loads only with a SQL store
    from lockstep.meta.store import MetaStore

# Process start times are reported with limited precision; allow this much slack.
_START_TIME_SLACK = 0.05


def host_name() -> str:
    return socket.gethostname()


def process_start_time(pid: int) -> float | None:
    """When the process started (unix seconds), or None if it does not exist."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_process_alive(pid: int, started: float | None) -> bool:
    """Whether pid is running and is the same process that started at ``started``."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if started is not None and abs(process.create_time() - started) > _START_TIME_SLACK:
            return False  # the pid was recycled by another process
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return True


def is_dead(run: LiveRun, *, host: str, now: float, grace: float) -> bool:
    if run.pid <= 0:
        # A run made over MLflow's API: no process to watch and no heartbeat promised;
        # its client ends it.
        return False
    if run.host == host:
        return not is_process_alive(run.pid, run.pid_start)
    return now - run.heartbeat_at > grace


def reap_dead_runs(meta: MetaStore, *, grace: float) -> list[str]:
    """Mark every run whose process died while running as crashed; returns their ids."""
    if meta.read_only:
        return []  # a read-only store is shown as it is
    host, now = host_name(), time.time()
    dead = [run for run in meta.live_runs() if is_dead(run, host=host, now=now, grace=grace)]
    for run in dead:
        where = "on this host" if run.host == host else f"on {run.host} (no heartbeat)"
        meta.finish_run(
            run.id,
            RunStatus.CRASHED,
            end_time=max(run.heartbeat_at, run.pid_start or 0.0),
            error=f"process {run.pid} {where} ended without finishing the run",
        )
    return [run.id for run in dead]

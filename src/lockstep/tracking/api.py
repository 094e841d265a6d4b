"""The Python tracking API: ``start``, ``active_run``, ``runs`` and ``get_run``."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from lockstep.core.ids import new_run_id
from lockstep.core.names import new_run_name
from lockstep.core.query import parse_filter, parse_sort
from lockstep.errors import LockstepError, StoreError, UsageError
from lockstep.settings import Settings
from lockstep.tracking import active, liveness
from lockstep.tracking.query import RunView
from lockstep.tracking.run import Run
from lockstep.workspace import Workspace

DEFAULT_EXPERIMENT = "default"
_workspaces: dict[tuple[Any, ...], Workspace] = {}


def open_workspace(settings: Settings | None = None, *, create: bool = True) -> Workspace:
    """The workspace for these settings (read from the environment when not given), cached."""
    settings = settings or Settings.from_env()
    key = (settings.cwd, settings.home, settings.db_url)
    workspace = _workspaces.get(key)
    if workspace is None:
        workspace = Workspace.open(settings, create=create)
        _workspaces[key] = workspace
    return workspace


def start(
    experiment: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    note: str = "",
) -> Run:
    """Start recording a run; use it as a context manager or call ``finish()``.

    Inside ``lockstep run`` the first call attaches to the run that command
    created instead of making a new one.
    """
    settings = Settings.from_env()
    workspace = open_workspace(settings)
    if settings.attach_run_id and not _attached:
        return _attach(workspace, settings.attach_run_id, params, tags, note)
    run = begin_run(
        workspace, experiment=experiment, name=name, params=params, tags=tags, note=note
    )
    run.install_signal_handlers()
    active.push(run)
    return run


def begin_run(
    workspace: Workspace,
    *,
    experiment: str | None,
    name: str | None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    note: str = "",
    run_id: str | None = None,
    start_time: float | None = None,
) -> Run:
    """Record a new run owned by this process and start its writer.

    ``lockstep run`` passes an id and start time it chose before starting the
    command, so the command can start before the store is even opened.
    """
    if experiment is not None and not experiment.strip():
        raise UsageError("experiment must be a non-empty name")
    now = time.time() if start_time is None else start_time
    run_id = run_id or new_run_id(int(now * 1000))
    run_name = name or new_run_name()
    experiment_name = experiment or DEFAULT_EXPERIMENT
    pid = os.getpid()
    try:
        workspace.meta.create_run(
            run_id=run_id,
            name=run_name,
            experiment=experiment_name,
            start_time=now,
            host=liveness.host_name(),
            pid=pid,
            pid_start=liveness.process_start_time(pid),
            params=params,
            tags=tags,
            note=note,
        )
    except LockstepError:
        raise
    except Exception as exc:  # a full disk, a read-only store, a database gone away
        from lockstep.tracking.writer import brief

        raise StoreError(
            f"cannot record a new run in {workspace.meta.location}: {brief(exc)}; check the "
            "disk space and that the store is writable"
        ) from exc
    return Run(workspace, run_id=run_id, name=run_name, experiment=experiment_name, owner=True)


_attached: list[str] = []


def _attach(
    workspace: Workspace,
    run_id: str,
    params: Mapping[str, Any] | None,
    tags: Mapping[str, Any] | None,
    note: str,
) -> Run:
    record = _wait_for_run(workspace, run_id)
    run = Run(
        workspace, run_id=record.id, name=record.name, experiment=record.experiment, owner=False
    )
    _attached.append(run_id)
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    if note:
        run.set_note(note)
    active.push(run)
    return run


# `lockstep run` starts the command first and records the run meanwhile; a command that
# attaches at once may have to wait for that record.
ATTACH_WAIT_SECONDS = 60.0


def _wait_for_run(workspace: Workspace, run_id: str) -> Any:
    from lockstep.errors import RunNotFound

    deadline = time.monotonic() + ATTACH_WAIT_SECONDS
    pause = 0.01
    while True:
        try:
            return workspace.meta.get_run(run_id)
        except RunNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


def active_run() -> Run | None:
    """The innermost run this process has open (inside ``lockstep run``: that run)."""
    run = active.current()
    if run is None:
        settings = Settings.from_env()
        if settings.attach_run_id and not _attached:
            return _attach(open_workspace(settings), settings.attach_run_id, None, None, "")
    return run


def runs(
    experiment: str | None = None,
    filter: str = "",
    sort: str = "",
    limit: int | None = None,
) -> list[RunView]:
    """Runs matching a filter (see ``lockstep.core.query``), newest first unless sorted."""
    if limit is not None and limit < 0:
        raise UsageError("limit must be zero or more")
    workspace = open_workspace(create=False)
    liveness.reap_dead_runs(workspace.meta, grace=workspace.settings.heartbeat_grace)
    records = workspace.meta.search(
        experiment=experiment, where=parse_filter(filter), sort=parse_sort(sort), limit=limit
    )
    return [RunView(record, workspace) for record in records]


def get_run(ref: str) -> RunView:
    """One run by full id, unique id prefix (4+ characters), unique name, or ``last``."""
    workspace = open_workspace(create=False)
    liveness.reap_dead_runs(workspace.meta, grace=workspace.settings.heartbeat_grace)
    return RunView(workspace.meta.get_run(workspace.meta.resolve(ref)), workspace)


def close_workspaces() -> None:
    """Close every store this process opened through the API (tests and long-lived apps)."""
    for workspace in _workspaces.values():
        workspace.close()
    _workspaces.clear()
    _attached.clear()

"""The live Run: log metrics without blocking, params, tags, artifacts, and its end."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from lockstep.core.records import Artifact
from lockstep.core.status import RunStatus
from lockstep.errors import RunStateError, UsageError
from lockstep.tracking import active
from lockstep.tracking.writer import MetricWriter

if TYPE_CHECKING:
    from lockstep.tracking.history import MetricHistory
    from lockstep.workspace import Workspace


class Run:
    """One run being recorded by this process.

    Use it as a context manager (``with lockstep.start(...) as run``) or call
    ``finish()``; a run left open is finished when the interpreter exits.
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        run_id: str,
        name: str,
        experiment: str,
        owner: bool,
    ) -> None:
        self.id = run_id
        self.name = name
        self.experiment = experiment
        self._workspace = workspace
        # The owner decides the final status; an attached process (a child of
        # `lockstep run`) only adds to the run.
        self._owner = owner
        self._writer = MetricWriter(
            workspace.meta,
            run_id,
            flush_interval=workspace.settings.flush_interval,
            heartbeat_interval=workspace.settings.heartbeat_interval,
            new_run=owner,
        )
        self._add = self._writer.buffer.add
        self._finished = False
        # Work to do just before the run ends (a tensor watch storing what it has so far).
        self.before_finish: list[Callable[[], None]] = []
        self._signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._writer.start()

    def __repr__(self) -> str:
        return f"<Run {self.name} {self.id}>"

    # logging -------------------------------------------------------------------

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record metric values at a step (default: one past the previous call's step).

        Returns in about a microsecond: the values go to an in-memory buffer that
        a background thread stores every flush interval. A value that is not a
        real number raises InvalidMetric (a TypeError) naming its key.
        """
        self._add(metrics, step)

    def log_params(self, params: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Record parameters; nested mappings become dotted keys (``optimizer.lr``)."""
        merged = {**(params or {}), **kwargs}
        if merged:
            self._workspace.meta.log_params(self.id, merged)

    def set_tag(self, key: str, value: Any) -> None:
        self._workspace.meta.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._workspace.meta.set_tags(self.id, tags)

    def set_note(self, note: str) -> None:
        self._workspace.meta.set_note(self.id, note)

    def log_artifact(self, path: str | os.PathLike[str], *, kind: str = "artifact") -> Artifact:
        """Record a file by content digest, under its path relative to the project."""
        from lockstep.objects.hashing import hash_file

        source = Path(path)
        if not source.is_file():
            raise UsageError(f"artifact {str(path)!r} is not a file; log files one at a time")
        digest, size = hash_file(source)
        artifact = Artifact(
            path=_display_path(source, self._workspace.project_root),
            digest=digest,
            size=size,
            kind=kind,
        )
        self._workspace.meta.add_artifacts(self.id, [artifact])
        return artifact

    def log_outputs(self, path: str | os.PathLike[str]) -> list[Artifact]:
        """Record the files at path (a file or a folder) as the run's outputs, stored by
        content: one hash pass each, and no copy where the store's link strategies allow."""
        from lockstep.data.versions import scan
        from lockstep.objects import guard

        source = Path(path).resolve()
        items = list(scan(source)) if source.exists() else []
        if not items:
            raise UsageError(f"{path} holds no files to record")
        root = self._workspace.project_root
        data = self._workspace.data()
        # gc waits until the artifacts naming the new objects are recorded.
        with guard.writing(self._workspace.objects.root):
            digests, _, _ = data.digests(source, items, store=True)
            artifacts = [
                Artifact(
                    path=_display_path(Path(i.absolute), root),
                    digest=digests[i.relative],
                    size=i.key[2],
                    kind="output",
                )
                for i in items
            ]
            self._workspace.meta.add_artifacts(self.id, artifacts)
        return artifacts

    def store_section(self, name: str, value: Any) -> None:
        """Store a named JSON section with the run (what ``lockstep show --json`` lists)."""
        self._workspace.meta.set_sections(self.id, {name: value})

    def flush(self) -> None:
        """Store every buffered metric point now (normally the background thread does)."""
        self._writer.flush()

    def metric_history(self, key: str) -> MetricHistory:
        from lockstep.tracking.history import MetricHistory

        self.flush()
        return MetricHistory.from_chunks(key, self._workspace.meta.metric_chunks(self.id, key))

    # lifecycle ---------------------------------------------------------------

    def finish(
        self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None
    ) -> None:
        """Store what is buffered and end the run with a final status (once)."""
        if self._finished:
            return
        status = RunStatus(status)
        if not status.is_final:
            raise RunStateError("finish() needs a final status: finished, failed or killed")
        for callback in self.before_finish:
            with contextlib.suppress(Exception):  # ending the run must not fail
                callback()
        self.before_finish.clear()
        self._finished = True
        self._restore_signals()
        lost, why = self._writer.close()
        active.remove(self)
        if lost:
            # Said in the record where it can still be written, and in the error.
            note = f"{lost} metric points could not be stored ({why})"
            error = note if error is None else f"{note}\n{error}"
            if status is RunStatus.FINISHED:
                status = RunStatus.FAILED
            with contextlib.suppress(Exception):
                self._workspace.meta.set_sections(
                    self.id, {"lost_points": {"count": lost, "error": why}}
                )
        if self._owner:
            if not lost:
                self._writer.compact()
            self._workspace.meta.finish_run(self.id, status, time.time(), error)
        elif error is not None:
            self._workspace.meta.set_sections(self.id, {"child_error": error})

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(*outcome(self._signal, exc_type, exc, tb))

    def install_signal_handlers(self) -> None:
        """SIGTERM ends the run as killed (SIGINT already raises KeyboardInterrupt).

        Only from the main thread, and never over a handler the user installed.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._previous_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signal = signum
        raise SystemExit(128 + signum)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous_handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, handler)
        self._previous_handlers.clear()

    def was_signalled(self) -> int | None:
        return self._signal


def outcome(
    signum: int | None,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> tuple[RunStatus, str | None]:
    """The final status and error text for a run that ended with this exception (or none)."""
    if signum is not None:
        return RunStatus.KILLED, f"killed by signal {signal.Signals(signum).name}"
    if exc_type is None:
        return RunStatus.FINISHED, None
    if issubclass(exc_type, KeyboardInterrupt):
        return RunStatus.KILLED, "interrupted (KeyboardInterrupt)"
    if issubclass(exc_type, SystemExit):
        code = exc.code if isinstance(exc, SystemExit) else None
        if code in (None, 0):
            return RunStatus.FINISHED, None
        return RunStatus.FAILED, f"SystemExit({code!r})"
    return RunStatus.FAILED, "".join(traceback.format_exception(exc_type, exc, tb))


def _display_path(path: Path, root: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return str(resolved)

"""Stored runs as returned by ``lockstep.runs`` and ``lockstep.get_run``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockstep.core.records import Artifact, MetricSummary, RunRecord
from lockstep.core.status import RunStatus

if TYPE_CHECKING:
    from lockstep.tracking.history import MetricHistory
    from lockstep.workspace import Workspace


class RunView:
    """A stored run: its record (``.record``) and its metric series on demand."""

    def __init__(self, record: RunRecord, workspace: Workspace) -> None:
        self.record = record
        self._workspace = workspace

    def __repr__(self) -> str:
        return f"<RunView {self.record.name} {self.record.id} {self.record.status}>"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def experiment(self) -> str:
        return self.record.experiment

    @property
    def status(self) -> RunStatus:
        return self.record.status

    @property
    def start_time(self) -> float:
        return self.record.start_time

    @property
    def end_time(self) -> float | None:
        return self.record.end_time

    @property
    def duration(self) -> float | None:
        return self.record.duration

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params

    @property
    def metrics(self) -> dict[str, float]:
        """The last value of every metric."""
        return self.record.final_metrics()

    @property
    def metric_summaries(self) -> dict[str, MetricSummary]:
        return self.record.metrics

    @property
    def tags(self) -> dict[str, str]:
        return self.record.tags

    @property
    def note(self) -> str:
        return self.record.note

    @property
    def error(self) -> str | None:
        return self.record.error

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return self.record.artifacts

    def metric_history(self, key: str) -> MetricHistory:
        from lockstep.tracking.history import MetricHistory

        return MetricHistory.from_chunks(key, self._workspace.meta.metric_chunks(self.id, key))

    def to_json(self) -> dict[str, Any]:
        return self.record.to_json()

"""Run status and the transitions the lifecycle allows."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life; every status but RUNNING is final."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"
    CRASHED = "crashed"

    @property
    def is_final(self) -> bool:
        return self is not RunStatus.RUNNING

"""Frozen records that cross layer boundaries: what a run is, as read back from the store."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lockstep.core.status import RunStatus

RUN_SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Experiment:
    id: int
    name: str
    created_at: float


class MetricSummary(NamedTuple):
    """What search and sort use: the last point, the extremes and how many points.

    A named tuple rather than a dataclass: searches build thousands of them.
    """

    key: str
    last: float
    last_step: int
    min: float
    max: float
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """A file the run produced or logged, referenced by content digest."""

    path: str
    digest: str
    size: int
    kind: str = "artifact"


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """A run as stored, with everything a listing shows.

    ``sections`` holds the open-ended parts later layers add (command, seed,
    code, environment, hardware, ...), each a JSON value under its name.
    """

    schema_version: int = RUN_SCHEMA_VERSION
    id: str
    name: str
    experiment: str
    status: RunStatus
    start_time: float
    end_time: float | None
    host: str
    pid: int
    note: str = ""
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def inputs(self) -> list[Artifact]:
        """Every project file the run read, as it was when read: the files it only read, and
        the first content of those it read and then rewrote (a resumed checkpoint)."""
        found = [a for a in self.artifacts if a.kind == "input"]
        for entry in self.sections.get("read_then_written", []) or []:
            if isinstance(entry, dict) and {"path", "digest", "size"} <= entry.keys():
                found.append(
                    Artifact(
                        path=entry["path"],
                        digest=entry["digest"],
                        size=entry["size"],
                        kind="input",
                    )
                )
        return sorted(found, key=lambda a: a.path)

    def final_metrics(self) -> dict[str, float]:
        return {key: summary.last for key, summary in self.metrics.items()}

    def to_json(self) -> dict[str, Any]:
        """The ``lockstep show --json`` shape: stable keys, sections merged in at the top."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "id": self.id,
            "name": self.name,
            "experiment": self.experiment,
            "status": str(self.status),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "host": self.host,
            "pid": self.pid,
            "note": self.note,
            "error": self.error,
            "params": self.params,
            "metrics": {k: _json_number(v) for k, v in self.final_metrics().items()},
            "metric_summaries": {
                key: {
                    "last": _json_number(s.last),
                    "last_step": s.last_step,
                    "min": _json_number(s.min),
                    "max": _json_number(s.max),
                    "count": s.count,
                }
                for key, s in self.metrics.items()
            },
            "tags": self.tags,
            "artifacts": [
                {"path": a.path, "digest": a.digest, "size": a.size, "kind": a.kind}
                for a in self.artifacts
            ],
        }
        out["inputs"] = [_artifact_json(a) for a in self.inputs()]
        out["outputs"] = [_artifact_json(a) for a in self.artifacts if a.kind == "output"]
        for name, value in self.sections.items():
            out.setdefault(name, value)
        return out


def _artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {"path": artifact.path, "digest": artifact.digest, "size": artifact.size}


def _json_number(value: float) -> float | str:
    """JSON has no NaN or infinity: spell them as strings so the output stays valid JSON."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def digests_named_in(value: Any) -> set[str]:
    """Every ``"digest"`` value anywhere in a JSON value (the objects a record needs)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            digest = item.get("digest")
            if isinstance(digest, str):
                found.add(digest)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found

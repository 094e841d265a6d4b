"""How records travel over HTTP: runs, metric summaries and metric columns as JSON.

Floats that JSON cannot hold (NaN, infinities) travel as strings; metric columns as
base64 of their little-endian bytes. Both sides use these functions, so a record
read through a server equals the record read from the store behind it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

from lockstep.core.records import Artifact, MetricSummary, RunRecord
from lockstep.core.status import RunStatus

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def from_number(value: Any) -> float:
    if isinstance(value, str):
        if value not in _SPECIAL:
            raise ValueError(f"not a number: {value!r}")
        return _SPECIAL[value]
    return float(value)


def summary_to_wire(summary: MetricSummary) -> list[Any]:
    return [
        summary.key,
        number(summary.last),
        summary.last_step,
        number(summary.min),
        number(summary.max),
        summary.count,
    ]


def summary_from_wire(item: list[Any]) -> MetricSummary:
    key, last, last_step, low, high, count = item
    return MetricSummary(
        key=str(key),
        last=from_number(last),
        last_step=int(last_step),
        min=from_number(low),
        max=from_number(high),
        count=int(count),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("a column must be base64 text")
    return base64.b64decode(text.encode(), validate=True)


def run_to_wire(record: RunRecord) -> dict[str, Any]:
    return {
        "schema_version": record.schema_version,
        "id": record.id,
        "name": record.name,
        "experiment": record.experiment,
        "status": str(record.status),
        "start_time": record.start_time,
        "end_time": record.end_time,
        "host": record.host,
        "pid": record.pid,
        "note": record.note,
        "error": record.error,
        "params": record.params,
        "metrics": [summary_to_wire(s) for s in record.metrics.values()],
        "tags": record.tags,
        "artifacts": [
            {"path": a.path, "digest": a.digest, "size": a.size, "kind": a.kind}
            for a in record.artifacts
        ],
        "sections": record.sections,
    }


def run_from_wire(doc: dict[str, Any]) -> RunRecord:
    summaries = [summary_from_wire(item) for item in doc.get("metrics", [])]
    return RunRecord(
        schema_version=int(doc.get("schema_version", 1)),
        id=str(doc["id"]),
        name=str(doc["name"]),
        experiment=str(doc["experiment"]),
        status=RunStatus(doc["status"]),
        start_time=float(doc["start_time"]),
        end_time=None if doc.get("end_time") is None else float(doc["end_time"]),
        host=str(doc["host"]),
        pid=int(doc["pid"]),
        note=str(doc.get("note", "")),
        error=doc.get("error"),
        params=dict(doc.get("params", {})),
        metrics={s.key: s for s in summaries},
        tags=dict(doc.get("tags", {})),
        artifacts=tuple(
            Artifact(path=a["path"], digest=a["digest"], size=int(a["size"]), kind=a["kind"])
            for a in doc.get("artifacts", [])
        ),
        sections=dict(doc.get("sections", {})),
    )


def retrying(send: Callable[[], Any], url: str, attempts: int = 3) -> Any:
    """send() (an httpx request), tried again on a connection error with a growing pause;
    after the last, one ServerUnreachable line naming the server. A server that takes
    longer than the client's timeout is not asked again: it counts as down at once, so
    a write goes to the spool instead of holding the writer (and its buffer) back."""
    import time

    import httpx

    from lockstep.errors import ServerUnreachable

    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return send()
        except httpx.TimeoutException as exc:
            last = exc
            break
        except httpx.TransportError as exc:
            last = exc
            time.sleep(0.2 * (attempt + 1))
    raise ServerUnreachable(
        f"cannot reach the lockstep server at {url} ({type(last).__name__}); check "
        "that it runs and LOCKSTEP_TRACKING_URI (or [server] url) is right"
    )

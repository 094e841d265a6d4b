"""What the server tells its operators: Prometheus metrics and one JSON access-log line
per request."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

access_log = logging.getLogger("lockstep.server.access")


class Observed:
    """The server's own metrics, in a registry of its own (one per application)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lockstep_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lockstep_request_seconds",
            "Time to answer a request, by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.batches = Counter(
            "lockstep_metric_batches", "Metric batches stored", registry=self.registry
        )
        self.points = Counter(
            "lockstep_metric_points", "Metric points stored", registry=self.registry
        )
        self.replayed = Counter(
            "lockstep_spool_replayed_writes",
            "Writes clients sent from their spool after an outage",
            registry=self.registry,
        )

    def text(self) -> bytes:
        return bytes(generate_latest(self.registry))


def enable_access_log() -> None:
    """JSON lines on standard error (what `lockstep server` writes unless --quiet)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


class Observe:
    """ASGI middleware: count, time and log every HTTP request by its route template
    (never by its raw path: ids in paths would make unbounded label sets)."""

    def __init__(self, app: Any, observed: Observed) -> None:
        self.app = app
        self.observed = observed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0

        async def watched(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.observed.requests.labels(scope["method"], template, str(status)).inc()
            if status < 400 and (b"x-lockstep-replayed", b"1") in scope.get("headers", ()):
                self.observed.replayed.inc()
            self.observed.latency.labels(template).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "time": round(time.time(), 3),
                            "method": scope["method"],
                            "path": scope["path"],
                            "route": template,
                            "status": status,
                            "ms": round(elapsed * 1000, 2),
                            "bytes": sent,
                            "client": (scope.get("client") or ["", 0])[0],
                            # The token's user, when the server checks tokens.
                            "user": (scope.get("state") or {}).get("user"),
                        }
                    )
                )

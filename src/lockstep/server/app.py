"""The ASGI application: lockstep's HTTP API over one workspace's metadata store.

Every request is hostile until checked: run ids, filter and sort strings (parsed by
the one grammar, never spliced into SQL), body sizes, metric columns. Errors map to
HTTP status here only: a reference that matches nothing is 404, bad input 400, a
state that forbids the operation 409.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import zlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lockstep import __version__
from lockstep.core import validate
from lockstep.core.query import parse_filter, parse_sort
from lockstep.core.records import Artifact
from lockstep.core.status import RunStatus
from lockstep.errors import (
    AccessDenied,
    LockstepError,
    NotAuthenticated,
    RunNotFound,
    RunStateError,
    StoreError,
    UsageError,
)
from lockstep.meta.shapes import MetricColumns
from lockstep.meta.store import MetaStore
from lockstep.remote import wire
from lockstep.server.projects import Projects
from lockstep.server.scope import API, PROJECT_API, Caller, Meta, Scope, run_id_of

# The most a request body may hold, compressed or not (a metric batch of a few hundred
# thousand points fits many times over).
MAX_BODY = 64 << 20
MAX_POINTS = 100_000
# Uploads that stream to disk in their route, whatever their size: objects, and files put
# through MLflow's artifact proxy.
_OBJECT_UPLOAD = re.compile(
    API + r"/projects/[^/]+/objects/[^/]+|(?:" + API + r"/projects/[^/]+/mlflow)?"
    r"/api/2\.0/mlflow-artifacts/(?:artifacts|mpu/part)/.+"
)


def _error(status: int, exc: Exception) -> JSONResponse:
    """The error as JSON: its message, its class, and the context it carries as
    attributes (a client rebuilds the same error from them)."""
    context = {
        k: v
        for k, v in vars(exc).items()
        if not k.startswith("_") and isinstance(v, str | int | float | bool | list | type(None))
    }
    return JSONResponse(
        {"error": str(exc), "kind": type(exc).__name__, "context": context}, status_code=status
    )


def _mapping(value: Any, field: str, key_limit: int) -> dict[str, Any]:
    """An object whose keys are text of at most key_limit characters (what the store's
    key columns hold)."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and 0 < len(k) <= key_limit for k in value
    ):
        raise UsageError(f"{field} must be an object with keys of 1 to {key_limit} characters")
    return value


def _query_hash(query: tuple[str, str, str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(query).encode()).hexdigest()[:16]


def _page_token(offset: int, query: tuple[str, str, str]) -> str:
    """Where the next page starts, bound to its query (opaque to clients)."""
    import base64

    return base64.urlsafe_b64encode(f"{offset}:{_query_hash(query)}".encode()).decode()


def _page_offset(token: str, query: tuple[str, str, str]) -> int:
    import base64
    import binascii

    try:
        offset, _, bound = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if bound != _query_hash(query) or not offset.isdigit():
            raise ValueError
        return int(offset)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise UsageError(
            "page_token does not belong to this query; start again without it"
        ) from None


def _existing(meta: MetaStore, run_id: str) -> str:
    checked = run_id_of(run_id)
    if not meta.has_run(checked):
        raise RunNotFound(checked)
    return checked


class BodyLimit:
    """ASGI middleware: a request body is read here whole, at most MAX_BODY bytes (with or
    without a length), gzip or deflate bodies inflated to at most MAX_BODY, before the
    application sees it; past a limit the answer is 400 and the application never runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "PUT" and _OBJECT_UPLOAD.fullmatch(scope["path"])
        ):
            # Object uploads stream to disk in their route, whatever their size.
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        encoding = headers.get(b"content-encoding", b"").lower()
        if declared.isdigit() and int(declared) > MAX_BODY:
            await _refuse(send, f"request body over {MAX_BODY} bytes")
            return
        if encoding not in (b"", b"identity", b"gzip", b"deflate"):
            await _refuse(send, f"unsupported content-encoding {encoding.decode(errors='replace')}")
            return
        raw = bytearray()
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if len(raw) > MAX_BODY:
                await _refuse(send, f"request body over {MAX_BODY} bytes")
                return
            if not message.get("more_body"):
                break
        data = bytes(raw)
        if encoding not in (b"", b"identity"):
            wbits = 16 + zlib.MAX_WBITS if encoding == b"gzip" else zlib.MAX_WBITS
            try:
                inflater = zlib.decompressobj(wbits)
                data = inflater.decompress(data, MAX_BODY + 1)
            except zlib.error:
                await _refuse(send, "the request body is not valid compressed data")
                return
            if len(data) > MAX_BODY or inflater.unconsumed_tail:
                await _refuse(send, f"request body over {MAX_BODY} bytes once decompressed")
                return
        rest = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ]
        # In place: the routing fills this scope, and Observe reads the route from it.
        scope["headers"] = [*rest, (b"content-length", str(len(data)).encode())]
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Any, problem: str) -> None:
    body = json.dumps({"error": problem, "kind": "UsageError", "context": {}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _body(request: Request) -> Any:
    """The JSON body (inflated and bounded by BodyLimit)."""
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request body is not valid JSON") from None


def _of(value: Any, kind: type, field: str) -> Any:
    """value, if it is a kind (a list, an object) as the field must be."""
    if not isinstance(value, kind):
        raise UsageError(f"{field} must be a{'n object' if kind is dict else ' list'}")
    return value


def _columns(item: dict[str, Any]) -> MetricColumns:
    _of(item, dict, "a metric column")
    steps, values, times = (wire.unb64(item[k]) for k in ("steps", "values", "times"))
    count = validate.integer(item["count"], "count", 1, 1 << 31)
    if not len(steps) == len(values) == len(times) == 8 * count:
        raise UsageError("metric columns must hold count int64 steps, float64 values and times")
    return MetricColumns(
        key=validate.text(item["key"], "key", limit=500),
        steps=steps,
        values=values,
        times=times,
        count=count,
        first_step=int(item["first_step"]),
        last_step=int(item["last_step"]),
    )


def downsample(steps: Any, values: Any, times: Any, max_points: int) -> tuple[Any, Any, Any]:
    """At most max_points points: each of max_points // 2 buckets keeps its lowest and its
    highest value (in step order), so a spike never disappears from a chart. Vectorised:
    a few passes over the series, whatever the number of buckets."""
    import numpy as np

    n = len(steps)
    if n <= max_points:
        return steps, values, times
    buckets = max(1, max_points // 2)
    edges = np.unique(np.linspace(0, n, buckets + 1).astype(np.int64))
    starts, sizes = edges[:-1], np.diff(edges)
    missing = np.isnan(values)
    low = np.where(missing, np.inf, values)  # NaN never wins; an all-NaN bucket keeps its first
    high = np.where(missing, -np.inf, values)
    bucket_of = np.repeat(np.arange(len(starts)), sizes)

    def first_where(hit: Any) -> Any:
        index = np.flatnonzero(hit)
        owner = bucket_of[index]
        return index[np.r_[True, owner[1:] != owner[:-1]]]

    lows = first_where(low == np.minimum.reduceat(low, starts)[bucket_of])
    highs = first_where(high == np.maximum.reduceat(high, starts)[bucket_of])
    index = np.union1d(lows, highs)
    return steps[index], values[index], times[index]


def create_app(projects: Projects, *, auth: bool = False) -> FastAPI:
    """The application over a server's projects; with auth, every API request needs a
    token."""
    from lockstep.server.observe import Observe, Observed

    observed = Observed()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        projects.close()  # after uvicorn answered what was in flight

    app = FastAPI(
        lifespan=lifespan,
        title="lockstep",
        version=__version__,
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    app.state.projects = projects
    app.state.auth = auth

    @app.exception_handler(LockstepError)
    async def lockstep_error(_request: Request, exc: LockstepError) -> JSONResponse:
        if isinstance(exc, NotAuthenticated):
            answer = _error(401, exc)
            answer.headers["www-authenticate"] = "Bearer"
            return answer
        if isinstance(exc, AccessDenied):
            return _error(403, exc)
        if isinstance(exc, LookupError):
            return _error(404, exc)
        if isinstance(exc, UsageError):
            return _error(400, exc)
        if isinstance(exc, RunStateError):
            return _error(409, exc)
        if isinstance(exc, StoreError):
            return _error(503, exc)
        return _error(500, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        return _error(400, UsageError(f"invalid request: {problems}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail), "kind": "HTTPError", "context": {}},
            status_code=exc.status_code,
        )

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def bad_value(_request: Request, exc: Exception) -> JSONResponse:
        # A field of the wrong type or shape (float("x"), RunStatus("nope"), a list where
        # an object belongs): what the client sent, so 400 with the reason.
        return _error(400, UsageError(f"invalid request: {exc}"))

    @app.exception_handler(KeyError)
    async def missing_field(_request: Request, exc: KeyError) -> JSONResponse:
        return _error(400, UsageError(f"the request lacks the field {exc}"))

    @app.get("/metrics")
    def prometheus() -> Response:
        """Requests, latencies and stored metric batches in Prometheus' text format."""
        return Response(observed.text(), media_type="text/plain; version=0.0.4")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "auth": auth}

    @app.get(API + "/projects")
    def list_projects(token: Caller) -> dict[str, Any]:
        """The projects this token may see (all of them without --auth)."""
        names = projects.access.projects()
        if token is not None:
            names = [n for n in names if n == token.project]
        return {"projects": names}

    @app.get(API + "/whoami")
    def whoami(token: Caller) -> dict[str, Any]:
        if token is None:
            return {"auth": False}
        return {"auth": True, "user": token.user, "project": token.project, "role": token.role}

    api = APIRouter(prefix=PROJECT_API)

    @api.get("/experiments")
    def experiments(meta: Meta) -> list[dict[str, Any]]:
        return [
            {"id": e.id, "name": e.name, "created_at": e.created_at} for e in meta.experiments()
        ]

    @api.post("/runs", status_code=201)
    def create_run(meta: Meta, body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
        """Create a run; creating one that exists (a replayed spool) changes nothing."""
        run_id = validate.run_id(body["id"])
        if meta.has_run(run_id):
            return {"id": run_id}
        meta.create_run(
            run_id=run_id,
            name=validate.text(body["name"], "name", limit=255),
            experiment=validate.text(body["experiment"], "experiment", limit=255),
            start_time=float(body["start_time"]),
            host=validate.text(body["host"], "host", limit=255),
            pid=int(body["pid"]),
            pid_start=None if body.get("pid_start") is None else float(body["pid_start"]),
            params=_mapping(body.get("params") or {}, "params", 500),
            tags=_mapping(body.get("tags") or {}, "tags", 255),
            note=validate.text(body.get("note", ""), "note"),
        )
        return {"id": run_id}

    @api.get("/runs")
    def search(
        meta: Meta,
        experiment: str | None = None,
        filter: str = "",
        sort: str = "",
        limit: int | None = Query(None, ge=1, le=1_000_000),
        offset: int = Query(0, ge=0),
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """Runs matching a filter, sorted; with a limit, next_page_token continues the
        same query where this page ended (a token from another query is refused)."""
        query = (experiment or "", filter, sort)
        if page_token:
            offset = _page_offset(page_token, query)
        found = meta.search(
            experiment=experiment,
            where=parse_filter(filter),
            sort=parse_sort(sort) if sort else (),
            limit=limit,
            offset=offset,
        )
        answer: dict[str, Any] = {"runs": [wire.run_to_wire(r) for r in found]}
        if limit is not None and len(found) == limit:
            answer["next_page_token"] = _page_token(offset + limit, query)
        return answer

    @api.get("/runs/count")
    def count(meta: Meta, experiment: str | None = None, filter: str = "") -> dict[str, int]:
        return {"count": meta.count(experiment=experiment, where=parse_filter(filter))}

    @api.get("/runs/resolve")
    def resolve(meta: Meta, ref: str, last_of: str | None = None) -> dict[str, str]:
        return {"id": meta.resolve(ref, last_of=last_of)}

    @api.post("/outputs/recorded")
    def recorded_outputs(meta: Meta, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Which of these paths some run recorded as an output, with the digests."""
        paths = body["paths"]
        if not isinstance(paths, list) or len(paths) > 1_000_000:
            raise UsageError("paths must be a list")
        found = meta.recorded_outputs([str(p) for p in paths])
        return {"outputs": sorted([path, digest] for path, digest in found)}

    @api.get("/runs/live")
    def live_runs(meta: Meta) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "host": r.host,
                "pid": r.pid,
                "pid_start": r.pid_start,
                "heartbeat_at": r.heartbeat_at,
            }
            for r in meta.live_runs()
        ]

    @api.get("/runs/{run_id}")
    def get_run(meta: Meta, run_id: str) -> dict[str, Any]:
        return wire.run_to_wire(meta.get_run(run_id_of(run_id)))

    @api.delete("/runs/{run_id}", status_code=204)
    def delete_run(meta: Meta, run_id: str) -> Response:
        meta.delete_run(_existing(meta, run_id))
        return Response(status_code=204)

    @api.post("/runs/{run_id}/params", status_code=204)
    def log_params(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        meta.log_params(_existing(meta, run_id), _mapping(body["params"], "params", 500))
        return Response(status_code=204)

    @api.post("/runs/{run_id}/tags", status_code=204)
    def set_tags(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        meta.set_tags(_existing(meta, run_id), _mapping(body["tags"], "tags", 255))
        return Response(status_code=204)

    @api.delete("/runs/{run_id}/tags", status_code=204)
    def delete_tag(meta: Meta, run_id: str, key: str) -> Response:
        meta.delete_tag(_existing(meta, run_id), key)
        return Response(status_code=204)

    @api.put("/runs/{run_id}/note", status_code=204)
    def set_note(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        meta.set_note(_existing(meta, run_id), validate.text(body["note"], "note"))
        return Response(status_code=204)

    @api.post("/runs/{run_id}/sections", status_code=204)
    def set_sections(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        meta.set_sections(_existing(meta, run_id), _mapping(body["sections"], "sections", 64))
        return Response(status_code=204)

    @api.post("/runs/{run_id}/artifacts", status_code=204)
    def add_artifacts(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        artifacts = []
        for item in body["artifacts"]:
            path = str(item["path"])
            if not path.startswith("/"):  # inside the project: a clean relative path
                validate.relative_path(path, "artifact path")
            artifacts.append(
                Artifact(
                    path=path,
                    digest=validate.digest(item["digest"], "artifact digest"),
                    size=validate.integer(item["size"], "artifact size"),
                    kind=str(item.get("kind", "artifact"))[:16],
                )
            )
        meta.add_artifacts(_existing(meta, run_id), artifacts)
        return Response(status_code=204)

    @api.post("/runs/{run_id}/finish", status_code=204)
    def finish_run(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        error = body.get("error")
        meta.finish_run(
            _existing(meta, run_id),
            RunStatus(body["status"]),
            float(body["end_time"]),
            None if error is None else validate.text(error, "error"),
        )
        return Response(status_code=204)

    @api.post("/runs/{run_id}/heartbeat", status_code=204)
    def heartbeat(meta: Meta, run_id: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        meta.heartbeat(_existing(meta, run_id), float(body["now"]))
        return Response(status_code=204)

    @api.get("/runs/{run_id}/metric-state")
    def metric_state(meta: Meta, run_id: str) -> dict[str, Any]:
        seqs, summaries = meta.metric_state(run_id_of(run_id))
        return {"seqs": seqs, "summaries": [wire.summary_to_wire(s) for s in summaries.values()]}

    # Batches are decoded and stored on worker threads, two at a time: the event loop
    # stays free for other requests, and memory holds two batches, not one per client.
    ingesting = threading.BoundedSemaphore(2)

    def ingest(meta: MetaStore, run_id: str, raw: bytes) -> int:
        with ingesting:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise UsageError("the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise UsageError("a metric batch is an object with columns, seqs, summaries")
            columns = [_columns(c) for c in _of(body["columns"], list, "columns")]
            seqs = {
                str(k): validate.integer(v, "seq", 0, 1 << 31)
                for k, v in _of(body["seqs"], dict, "seqs").items()
            }
            summaries = [
                wire.summary_from_wire(_of(s, list, "a summary"))
                for s in _of(body["summaries"], list, "summaries")
            ]
            if any(c.key not in seqs for c in columns):
                raise UsageError("every column needs its chunk number in seqs")
            meta.append_metrics(run_id, columns, seqs, summaries, float(body["heartbeat_at"]))
            return sum(c.count for c in columns)

    @api.post("/runs/{run_id}/metrics", status_code=204)
    async def append_metrics(meta: Meta, run_id: str, request: Request) -> Response:
        """One flush: columns per key (base64 little-endian), their chunk numbers, the new
        summaries. Sent again, it is stored once."""
        from starlette.concurrency import run_in_threadpool

        checked = _existing(meta, run_id)
        points = await run_in_threadpool(ingest, meta, checked, await request.body())
        observed.batches.inc()
        observed.points.inc(points)
        return Response(status_code=204)

    @api.get("/runs/{run_id}/chunks")
    def metric_chunks(meta: Meta, run_id: str, key: str) -> dict[str, Any]:
        stored = meta.metric_chunks(run_id_of(run_id), key)
        return {
            "steps": [wire.b64(b) for b in stored.steps],
            "values": [wire.b64(b) for b in stored.values],
            "times": [wire.b64(b) for b in stored.times],
        }

    @api.put("/runs/{run_id}/chunks", status_code=204)
    async def replace_metric_chunks(
        meta: Meta, run_id: str, key: str, request: Request
    ) -> Response:
        checked = _existing(meta, run_id)
        body = await _body(request)
        merged = [_columns({**c, "key": key}) for c in body["chunks"]]
        meta.replace_metric_chunks(checked, key, merged)
        return Response(status_code=204)

    @api.post("/runs/{run_id}/compact", status_code=204)
    async def compact_metrics(meta: Meta, run_id: str) -> Response:
        """Merge the run's flush-sized chunks into few large ones, here."""
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(meta.compact_metrics, _existing(meta, run_id))
        return Response(status_code=204)

    @api.get("/runs/{run_id}/chunk-counts")
    def chunk_counts(meta: Meta, run_id: str) -> dict[str, int]:
        return meta.chunk_counts(run_id_of(run_id))

    @api.get("/runs/{run_id}/history")
    def history(
        meta: Meta,
        run_id: str,
        key: str,
        max_points: int = Query(2000, ge=2, le=MAX_POINTS),
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[str, Any]:
        """A metric series, downsampled to at most max_points (min and max per bucket);
        with min_step or max_step, only the points in that range of steps (a zoom)."""
        from lockstep.tracking.history import MetricHistory

        series = MetricHistory.from_chunks(key, meta.metric_chunks(_existing(meta, run_id), key))
        steps, values, times = series.steps, series.values, series.times
        if min_step is not None or max_step is not None:
            inside = (steps >= (min_step if min_step is not None else steps.min(initial=0))) & (
                steps <= (max_step if max_step is not None else steps.max(initial=0))
            )
            steps, values, times = steps[inside], values[inside], times[inside]
        in_range = len(steps)
        steps, values, times = downsample(steps, values, times, max_points)
        return {
            "key": key,
            "points": len(series),
            "in_range": in_range,
            "steps": steps.tolist(),
            "values": [wire.number(v) for v in values.tolist()],
            "times": times.tolist(),
        }

    @api.get("/tokens")
    def list_tokens(project: Scope) -> dict[str, Any]:
        """The project's tokens (an admin token's own project only)."""
        return {"tokens": [t.to_json() for t in projects.access.tokens(project.name)]}

    @api.post("/tokens", status_code=201)
    def create_token(
        project: Scope,
        token: Caller,
        body: dict[str, Any] = Body(...),  # noqa: B008
    ) -> dict[str, Any]:
        made, secret = projects.access.create_token(
            validate.text(body.get("user", ""), "user", limit=255),
            project.name,
            str(body.get("role", "")),
            created_by=token.user if token is not None else "server",
        )
        return {**made.to_json(), "token": secret}

    @api.delete("/tokens/{token_id}")
    def revoke_token(project: Scope, token_id: str) -> dict[str, Any]:
        return projects.access.revoke(token_id, project.name).to_json()

    from lockstep.server import catalog, documents, hub, mlflow, objects, records

    hub.add_api_routes(api)
    catalog.add_routes(api)
    objects.add_routes(api)
    records.add_routes(api)
    documents.add_routes(api)
    # MLflow's routes first: a request is matched against the routes in order, and the
    # project router's many routes cost an MLflow client's log_metric half a millisecond.
    mlflow.add_routes(app)
    app.include_router(api)
    hub.add_site(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(hub.SecurityHeaders)
    app.add_middleware(Observe, observed=observed)  # outermost: sees every answer
    return app

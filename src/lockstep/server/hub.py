"""The hub: its built pages and assets at ``/``, the security headers every answer
carries, the login that keeps a token in an HttpOnly cookie, and the read routes its
views need (a page of the runs grid, column keys, groups, CSV export, previews, diffs)."""

from __future__ import annotations

import csv
import io
import math
import secrets
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from lockstep.core import validate
from lockstep.core.query import parse_filter, parse_sort
from lockstep.core.records import RunRecord
from lockstep.errors import InvalidValue, NotAuthenticated, ObjectMissing, UsageError
from lockstep.meta.views import ViewQueries, verdict_of
from lockstep.remote import wire
from lockstep.server.scope import API, CSRF_COOKIE, TOKEN_COOKIE, Meta, Scope, run_id_of

# No inline script or style, nothing from another origin; images may be data URLs
# (uPlot's legend markers) or our own previews.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
MAX_PAGE = 1000
MAX_PREVIEW = 1 << 20
# Images a browser may show from an artifact; SVG is left out (it can carry script).
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
# Client-side routes answered with the hub's page (the view is in the path and query).
HUB_PAGES = ("/", "/login", "/p/{rest:path}")


def assets_dir() -> Path:
    """Where the built hub is (inside the package: no Node.js at install or run time)."""
    return Path(str(resources.files("lockstep.hub") / "assets"))


class SecurityHeaders:
    """ASGI middleware: every answer carries the CSP and the other hardening headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _digest(value: str) -> str:
    try:
        return validate.digest(value, "object digest")
    except InvalidValue:
        raise ObjectMissing(str(value)[:80]) from None


def _number(value: float | None) -> float | str | None:
    return None if value is None else wire.number(value)


def _metric_cells(record: RunRecord) -> dict[str, list[float | str | None]]:
    return {
        key: [_number(s.last), _number(s.min), _number(s.max)] for key, s in record.metrics.items()
    }


def grid_row(record: RunRecord, verdict: dict[str, Any] | None) -> dict[str, Any]:
    """One run as the grid shows it: attributes, params, metrics as [last, min, max],
    tags, and its newest reproduction verdict."""
    return {
        "id": record.id,
        "name": record.name,
        "experiment": record.experiment,
        "status": str(record.status),
        "start_time": record.start_time,
        "end_time": record.end_time,
        "host": record.host,
        "params": record.params,
        "metrics": _metric_cells(record),
        "tags": record.tags,
        "verdict": verdict,
    }


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = str(value)
    # A cell a spreadsheet would run as a formula is quoted as text.
    return (
        "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _numeric(text) else text
    )


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cell(row: dict[str, Any], column: str) -> Any:
    kind, _, key = column.partition(".")
    if kind == "params":
        return row["params"].get(key)
    if kind == "tags":
        return row["tags"].get(key)
    if kind == "metrics":
        name, _, which = key.rpartition(".")
        index = {"last": 0, "min": 1, "max": 2}.get(which)
        if index is None:
            name, index = key, 0
        cells = row["metrics"].get(name)
        return None if cells is None else cells[index]
    if column == "verdict":
        verdict = row["verdict"]
        return "" if verdict is None else verdict["verdict"]
    return row.get(column)


def add_api_routes(api: APIRouter) -> None:
    """The hub's read routes, under a project."""

    @api.get("/hub/runs")
    def runs_page(
        meta: Meta,
        experiment: str | None = None,
        filter: str = "",
        sort: str = "",
        offset: int = Query(0, ge=0, le=10_000_000),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        total: bool = True,
    ) -> dict[str, Any]:
        """A window of the runs grid: the runs from offset, with the count of all that
        match (the grid's height) when total is asked."""
        where = parse_filter(filter)
        found = meta.search(
            experiment=experiment or None,
            where=where,
            sort=parse_sort(sort) if sort else (),
            limit=limit,
            offset=offset,
        )
        verdicts = ViewQueries(meta.engine).verdicts([r.id for r in found])
        answer: dict[str, Any] = {
            "offset": offset,
            "runs": [grid_row(r, verdicts.get(r.id)) for r in found],
        }
        if total:
            answer["total"] = meta.count(experiment=experiment or None, where=where)
        return answer

    @api.get("/hub/check")
    def check_filter(filter: str = "", sort: str = "") -> dict[str, Any]:
        """Whether a filter and a sort parse, and where they do not (200 either way: a
        typo in the search box is not a failed request)."""
        from lockstep.errors import InvalidFilter

        try:
            parse_filter(filter)
            if sort:
                parse_sort(sort)
        except InvalidFilter as exc:
            return {
                "ok": False,
                "error": {
                    "message": str(exc),
                    "expression": exc.expression,
                    "column": exc.column,
                    "problem": exc.problem,
                },
            }
        return {"ok": True}

    @api.get("/hub/keys")
    def run_keys(meta: Meta, experiment: str | None = None) -> dict[str, Any]:
        """The param, metric and tag keys the runs use: the grid's column choices."""
        return ViewQueries(meta.engine).keys(experiment or None)

    @api.get("/hub/groups")
    def groups(
        meta: Meta,
        by: str = Query(..., min_length=1, max_length=500),
        metrics: str = Query("", max_length=20_000),
        experiment: str | None = None,
        filter: str = "",
    ) -> dict[str, Any]:
        """Runs grouped by one param, each metric's last value aggregated per group."""
        keys = [k for k in metrics.split(",") if k][:50]
        found = ViewQueries(meta.engine).groups(
            by.removeprefix("params."),
            keys,
            experiment=experiment or None,
            where=parse_filter(filter),
        )
        return {"by": by, "groups": found}

    @api.get("/hub/runs.csv")
    def export_csv(
        meta: Meta,
        columns: str = Query(..., min_length=1, max_length=50_000),
        experiment: str | None = None,
        filter: str = "",
        sort: str = "",
    ) -> StreamingResponse:
        """The grid's view as CSV, every matching run, streamed page by page."""
        chosen = ["id", "name", *[c for c in columns.split(",") if c and c not in ("id", "name")]]
        if len(chosen) > 2000:
            raise UsageError("at most 2000 columns in an export")
        where = parse_filter(filter)
        order = parse_sort(sort) if sort else ()
        queries = ViewQueries(meta.engine)

        def lines() -> Iterator[str]:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(chosen)
            offset = 0
            while True:
                page = meta.search(
                    experiment=experiment or None,
                    where=where,
                    sort=order,
                    limit=MAX_PAGE,
                    offset=offset,
                )
                verdicts = queries.verdicts([r.id for r in page])
                for record in page:
                    row = grid_row(record, verdicts.get(record.id))
                    writer.writerow([_csv_value(_cell(row, c)) for c in chosen])
                yield out.getvalue()
                out.seek(0)
                out.truncate()
                if len(page) < MAX_PAGE:
                    return
                offset += MAX_PAGE

        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="runs.csv"'},
        )

    @api.get("/hub/runs/{run_id}/verdict")
    def run_verdict(meta: Meta, run_id: str) -> dict[str, Any]:
        record = meta.get_run(run_id_of(run_id))
        return {"verdict": verdict_of(record.sections.get("verifications"))}

    @api.get("/hub/runs/{run_id}/report")
    def run_report(project: Scope, run_id: str) -> dict[str, Any]:
        """The run's reproducibility report as Markdown (``lockstep report``)."""
        from lockstep.reproduce.report import markdown

        record = project.meta.get_run(run_id_of(run_id))
        return {"markdown": markdown(record, project.objects)}

    @api.get("/hub/diff")
    def diff(project: Scope, a: str, b: str) -> dict[str, Any]:
        """How two runs differ, dimension by dimension (``lockstep diff --json``)."""
        from lockstep.reproduce.diff import diff_runs
        from lockstep.tracking.history import history_reader

        meta = project.meta
        first, second = meta.get_run(run_id_of(a)), meta.get_run(run_id_of(b))
        return {
            "differences": diff_runs(
                first, second, objects=project.objects, history=history_reader(meta)
            )
        }

    @api.get("/hub/objects/{digest}/text")
    def text_preview(
        project: Scope, digest: str, limit: int = Query(65536, ge=1, le=MAX_PREVIEW)
    ) -> dict[str, Any]:
        """The head of an object as text (stdout, a diff, a text artifact): at most limit
        bytes, decoded leniently; binary content is said, not sent."""
        checked = _digest(digest)
        if not project.objects.has(checked):
            raise ObjectMissing(checked)
        with project.objects.open(checked) as handle:
            head = handle.read(limit + 1)
        binary = b"\0" in head[:8192]
        return {
            "text": "" if binary else head[:limit].decode("utf-8", errors="replace"),
            "truncated": len(head) > limit,
            "binary": binary,
        }

    @api.get("/hub/objects/{digest}/image", response_model=None)
    def image_preview(project: Scope, digest: str, name: str) -> Response:
        """An image artifact with its type (from an allowed extension only)."""
        media = _IMAGE_TYPES.get(Path(name).suffix.lower())
        if media is None:
            raise UsageError("not a previewable image type (png, jpeg, gif, webp, bmp)")
        checked = _digest(digest)
        if not project.objects.has(checked):
            raise ObjectMissing(checked)
        with project.objects.open(checked) as handle:
            data = handle.read(64 << 20)
        return Response(
            data, media_type=media, headers={"cache-control": "private, max-age=31536000"}
        )

    @api.get("/hub/objects/{digest}/download", response_model=None)
    def download(project: Scope, digest: str, name: str = "download") -> Response:
        """An object as a file download, under its artifact's base name."""
        checked = _digest(digest)
        if not project.objects.has(checked):
            raise ObjectMissing(checked)
        filename = "".join(c for c in Path(name).name if c.isalnum() or c in "._-")[:200]
        headers = {"content-disposition": f'attachment; filename="{filename or "download"}"'}
        local = project.objects.path(checked)
        if local.is_file():
            return FileResponse(local, media_type="application/octet-stream", headers=headers)

        def chunks() -> Iterator[bytes]:
            # Objects on S3 come through the server's cache in pieces, never whole in memory.
            with project.objects.open(checked) as handle:
                while piece := handle.read(1 << 20):
                    yield piece

        return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


def add_site(app: FastAPI) -> None:
    """The hub's page, assets and login at the root of the server."""
    from starlette.staticfiles import StaticFiles

    root = assets_dir()
    index = root / "index.html"

    def page() -> Response:
        if not index.is_file():
            return Response(
                "the hub is not built: run make hub (needs Node.js) or install a release",
                status_code=503,
                media_type="text/plain",
            )
        return FileResponse(index, media_type="text/html", headers={"cache-control": "no-cache"})

    for path in HUB_PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    if (root / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=root / "assets"), name="hub-assets")

    @app.post(API + "/hub/login", include_in_schema=False)
    def login(request: Request, body: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
        """Check a token and keep it in an HttpOnly, SameSite=Strict cookie, with the
        CSRF token the page sends back on every write."""
        state = request.app.state
        secret = body.get("token")
        if not isinstance(secret, str) or not secret.strip():
            raise UsageError("give the token to log in with")
        token = state.projects.access.authenticate(secret.strip()) if state.auth else None
        if state.auth and token is None:
            # 200 with the reason: a mistyped token is the form's answer, not a failure
            # of the page (the API itself still answers 401 to an unknown bearer token).
            return JSONResponse(
                {
                    "ok": False,
                    "error": "the server does not know this token (wrong or revoked); "
                    "ask an admin for a new one",
                }
            )
        answer = JSONResponse(
            {"ok": True, "user": token.user, "project": token.project, "role": token.role}
            if token
            else {"ok": True, "auth": False}
        )
        secure = request.url.scheme == "https"
        answer.set_cookie(
            TOKEN_COOKIE,
            secret.strip(),
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )
        answer.set_cookie(
            CSRF_COOKIE,
            secrets.token_urlsafe(32),
            httponly=False,
            samesite="strict",
            secure=secure,
            path="/",
        )
        return answer

    @app.get(API + "/hub/session", include_in_schema=False)
    def session(request: Request) -> dict[str, Any]:
        """Who the page is logged in as; never 401, so the page can decide to show its
        login form without a failed request."""
        from lockstep.server.scope import request_token

        if not request.app.state.auth:
            return {"auth": False, "logged_in": True}
        try:
            token = request_token(request)
        except NotAuthenticated:
            return {"auth": True, "logged_in": False}
        assert token is not None
        return {
            "auth": True,
            "logged_in": True,
            "user": token.user,
            "project": token.project,
            "role": token.role,
        }

    @app.post(API + "/hub/logout", include_in_schema=False)
    def logout() -> JSONResponse:
        answer = JSONResponse({"ok": True})
        answer.delete_cookie(TOKEN_COOKIE, path="/")
        answer.delete_cookie(CSRF_COOKIE, path="/")
        return answer

"""Objects over HTTP: which of many digests a project lacks, uploads streamed to disk and
checked against their digest before they become visible (resumable from what arrived),
and downloads streamed with ranges. The server never holds a whole object in memory."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from lockstep.core import validate
from lockstep.errors import InvalidValue, ObjectCorrupt, ObjectMissing, UsageError
from lockstep.objects.store import LocalObjectStore
from lockstep.server.s3objects import S3Objects
from lockstep.server.scope import Scope

# The most digests one existence check may name.
MAX_DIGESTS = 100_000
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _digest(value: str) -> str:
    try:
        return validate.digest(value, "object digest")
    except InvalidValue:
        raise ObjectMissing(str(value)[:80]) from None  # a name that cannot exist is absent


def _partial(objects: LocalObjectStore, digest: str) -> Path:
    """Where an upload of digest waits until its last byte arrives (kept across restarts,
    so an interrupted upload resumes)."""
    return objects.root / "uploads" / f"{digest}.part"


def _content_range(header: str | None) -> tuple[int, int | None]:
    """(first byte, total size) of an upload; (0, None) for a whole body."""
    if not header:
        return 0, None
    match = _RANGE.fullmatch(header.strip())
    if not match:
        raise UsageError("Content-Range must read 'bytes FIRST-LAST/TOTAL'")
    first, last, total = (int(g) for g in match.groups())
    if not first <= last < total:
        raise UsageError("Content-Range must have FIRST <= LAST < TOTAL")
    return first, total


async def _receive(
    objects: LocalObjectStore, checked: str, first: int, total: int | None, request: Request
) -> JSONResponse:
    """Write the request's bytes at first into the digest's partial upload; once it holds
    total bytes (or the whole body), check them against the digest and store them."""
    if objects.has(checked):
        return JSONResponse({"stored": True})
    part = _partial(objects, checked)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if first != (have if total is not None else 0):
        return JSONResponse(
            {"error": f"the upload continues at byte {have}", "received": have},
            status_code=409,
        )
    with open(part, "r+b" if first else "wb") as handle:
        handle.seek(first)
        handle.truncate()
        async for piece in request.stream():
            handle.write(piece)
        received = handle.tell()
    if total is not None and received < total:
        return JSONResponse({"stored": False, "received": received}, status_code=202)
    try:
        await run_in_threadpool(objects.put_fetched, checked, lambda tmp: os.replace(part, tmp))
    except ObjectCorrupt as exc:
        part.unlink(missing_ok=True)
        raise UsageError(
            f"the uploaded bytes hash to {exc.actual}, not {checked}: nothing was stored"
        ) from None
    return JSONResponse({"stored": True}, status_code=201)


def add_routes(api: APIRouter) -> None:
    """The object routes, on the project router."""
    # One upload of a digest at a time per process; another waits, then finds it stored.
    # Each lock is kept while someone uses it, with how many do.
    locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @api.post("/objects/missing")
    def missing_objects(project: Scope, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Which of these digests the project does not hold."""
        digests = body["digests"]
        if not isinstance(digests, list) or len(digests) > MAX_DIGESTS:
            raise UsageError(f"digests must be a list of at most {MAX_DIGESTS}")
        checked = [validate.digest(d, "object digest") for d in digests]
        if isinstance(project.objects, S3Objects):
            return {"missing": project.objects.missing(checked)}
        return {"missing": [d for d in checked if not project.objects.has(d)]}

    @api.get("/objects/{digest}/upload")
    def upload_state(
        project: Scope, digest: str, size: int | None = Query(None, ge=0)
    ) -> dict[str, Any]:
        """How much of an interrupted upload arrived (resume from there); with objects on
        S3, the presigned URLs of the parts still to send (give the size)."""
        checked = _digest(digest)
        if isinstance(project.objects, S3Objects):
            if size is None:
                raise UsageError("give the object's size (?size=N) for an upload to S3")
            return project.objects.upload_plan(checked, size)
        if project.objects.has(checked):
            return {"stored": True, "received": None}
        part = _partial(project.objects, checked)
        return {"stored": False, "received": part.stat().st_size if part.exists() else 0}

    @api.put("/objects/{digest}")
    async def upload_object(project: Scope, digest: str, request: Request) -> JSONResponse:
        """The object's bytes, whole or from Content-Range's first byte on; stored once
        they hash to digest."""
        checked = _digest(digest)
        objects: LocalObjectStore = project.objects
        if isinstance(objects, S3Objects):
            raise UsageError(
                "this server takes uploads straight to S3: GET the upload's URLs from "
                f"objects/{checked}/upload?size=N"
            )
        if objects.has(checked):
            return JSONResponse({"stored": True})
        first, total = _content_range(request.headers.get("content-range"))
        key = f"{project.name}/{checked}"
        lock, users = locks.get(key, (asyncio.Lock(), 0))
        locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await _receive(objects, checked, first, total, request)
        finally:
            lock, users = locks[key]
            if users == 1:
                del locks[key]  # nobody else uploads it: forget the lock
            else:
                locks[key] = (lock, users - 1)

    @api.post("/objects/{digest}/complete", status_code=201)
    def complete_upload(
        project: Scope,
        digest: str,
        body: dict[str, Any] = Body(...),  # noqa: B008
    ) -> dict[str, Any]:
        """An upload to S3 has all its parts: check it against the digest and show it."""
        checked = _digest(digest)
        if not isinstance(project.objects, S3Objects):
            raise UsageError("only a server keeping objects on S3 completes uploads")
        parts = body["parts"]
        if not isinstance(parts, list) or len(parts) > 10_000:
            raise UsageError("parts must be a list of [number, etag] pairs")
        pairs = [
            (validate.integer(n, "part number", 1, 10_000), validate.text(e, "etag", limit=128))
            for n, e in parts
        ]
        project.objects.complete(
            checked, validate.text(body["upload_id"], "upload id", limit=1024), pairs
        )
        return {"stored": True}

    @api.get("/objects/{digest}", response_model=None)
    def download_object(project: Scope, digest: str) -> Response:
        """The object's bytes (Range requests answered with 206); with objects on S3, a
        redirect to a presigned URL."""
        checked = _digest(digest)
        if isinstance(project.objects, S3Objects):
            return RedirectResponse(project.objects.download_url(checked), status_code=307)
        path = project.objects.path(checked)
        if not path.is_file():
            raise ObjectMissing(checked)
        return FileResponse(path, media_type="application/octet-stream")

"""MLflow's REST API on the server: ``/api/2.0/mlflow/`` (and ``/ajax-api/``, which MLflow's
UI uses) answered by ``mlflow.service`` over the caller's project, and the
``mlflow-artifacts`` proxy storing files by content.

The project is the token's (with --auth) or the default one; a client can also name one
by its tracking URI, ``http://HOST:PORT/api/v1/projects/NAME/mlflow``. Errors keep
MLflow's shape, ``{"error_code": ..., "message": ...}``, with its HTTP statuses, which
the client branches on.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from lockstep.errors import LockstepError, MlflowApiError
from lockstep.server.projects import Project
from lockstep.server.scope import API

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
SCOPED = API + "/projects/{project}/mlflow"
# Searches and other POSTs that only read.
_READING = frozenset(
    {
        "experiments/search",
        "runs/search",
        "logged-models/search",
        "registered-models/get-latest-versions",
    }
)


def _answer(exc: Exception) -> JSONResponse:
    from lockstep.mlflow.service import lockstep_error

    error = exc if isinstance(exc, MlflowApiError) else lockstep_error(exc)  # type: ignore[arg-type]
    return JSONResponse(
        {"error_code": error.error_code, "message": str(error)}, status_code=error.status
    )


def _project(request: Request, named: str | None, write: bool) -> tuple[Project, str | None]:
    """The caller's project and user, with the role the request needs checked."""
    from lockstep.errors import AccessDenied, InvalidValue, ProjectNotFound
    from lockstep.server.access import DEFAULT_PROJECT
    from lockstep.server.scope import request_token

    token = request_token(request)
    name = named or (token.project if token is not None else DEFAULT_PROJECT)
    if token is not None and token.project != name:
        raise ProjectNotFound(name)
    needed = "write" if write else "read"
    if token is not None and not token.allows(needed):
        raise AccessDenied(f"this token is {token.role}-only here; this needs a {needed} token")
    try:
        project = request.app.state.projects.get(name)
    except InvalidValue:
        raise ProjectNotFound(name) from None
    return project, (token.user if token is not None else None)


def _mlflow_error(exc: LockstepError) -> JSONResponse:
    from lockstep.errors import AccessDenied, NotAuthenticated

    if isinstance(exc, NotAuthenticated):
        return JSONResponse(
            {"error_code": "UNAUTHENTICATED", "message": str(exc)},
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )
    if isinstance(exc, AccessDenied):
        return JSONResponse({"error_code": "PERMISSION_DENIED", "message": str(exc)}, 403)
    return _answer(exc)


async def _request_body(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        found: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in found:
                previous = found[key]
                found[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                found[key] = value
        return found
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MlflowApiError("MALFORMED_REQUEST", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MlflowApiError("MALFORMED_REQUEST", "the request body must be a JSON object")
    return body


def _scoped_multipart(multipart: Any) -> Any:
    async def scoped(request: Request, project: str, step: str, path: str) -> Response:
        return await multipart(request, step, path, project)  # type: ignore[no-any-return]

    return scoped


def add_routes(app: FastAPI) -> None:
    """The MLflow routes, at the root and under each project's path."""
    from lockstep.mlflow import artifacts
    from lockstep.mlflow.service import MlflowService

    def service(project: Project, user: str | None) -> MlflowService:
        return MlflowService(project.workspace(), user=user)

    async def endpoint(request: Request, path: str, project_name: str | None = None) -> Response:
        try:
            body = await _request_body(request)
            write = request.method != "GET" and path.strip("/") not in _READING
            project, user = _project(request, project_name, write)
            answer = await run_in_threadpool(
                service(project, user).handle, request.method, path, body
            )
        except LockstepError as exc:
            return _mlflow_error(exc)
        return JSONResponse(answer)

    methods = ["GET", "POST", "PATCH", "DELETE"]
    for prefix in PREFIXES:
        app.add_api_route(
            prefix + "/{path:path}", endpoint, methods=methods, include_in_schema=False
        )

    async def scoped(request: Request, project: str, path: str) -> Response:
        return await endpoint(request, path, project)

    app.add_api_route(
        SCOPED + "/api/2.0/mlflow/{path:path}", scoped, methods=methods, include_in_schema=False
    )

    async def listing(request: Request, project_name: str | None = None) -> Response:
        try:
            project, user = _project(request, project_name, False)
            records = service(project, user).records
            inner = artifacts.clean(request.query_params.get("path", ""))
            files = await run_in_threadpool(artifacts.listing, records, inner, "")
        except LockstepError as exc:
            return _mlflow_error(exc)
        # Names relative to the listed folder, as MLflow's proxy answers.
        return JSONResponse({"files": files} if files else {})

    async def proxy(request: Request, path: str, project_name: str | None = None) -> Response:
        try:
            project, user = _project(request, project_name, request.method in ("PUT", "DELETE"))
            records = service(project, user).records
            clean = artifacts.clean(path)
            if not clean:
                raise MlflowApiError("INVALID_PARAMETER_VALUE", "an artifact path is needed")
            if request.method == "PUT":
                await _receive(request, project, records, clean)
                return JSONResponse({})
            if request.method == "DELETE":
                await run_in_threadpool(records.delete_files, clean)
                return JSONResponse({})
            digest, size = await run_in_threadpool(artifacts.read, project.objects, records, clean)
        except LockstepError as exc:
            return _mlflow_error(exc)
        return StreamingResponse(
            artifacts.chunks(project.objects, digest),
            media_type="application/octet-stream",
            headers={"content-length": str(size)},
        )

    async def _receive(request: Request, project: Project, records: Any, clean: str) -> None:
        incoming = project.objects.root / "incoming-mlflow"
        incoming.mkdir(parents=True, exist_ok=True)
        # A file of its own per upload: two clients putting one path at once never share.
        fd, name = tempfile.mkstemp(dir=incoming, prefix="put-")
        part = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                async for piece in request.stream():
                    handle.write(piece)
            digest, size = await run_in_threadpool(artifacts.store_file, project.objects, part)
            await run_in_threadpool(
                artifacts.record, project.workspace(), records, clean, digest, size
            )
        finally:
            with contextlib.suppress(OSError):
                Path(part).unlink()

    async def multipart(
        request: Request, step: str, path: str, project_name: str | None = None
    ) -> Response:
        """MLflow's proxied multipart upload: create hands out one URL per part (on this
        server; the upload id in it, 192 random bits, is the capability, as a presigned
        URL's signature is), complete joins the parts in order and stores the file by
        content, abort drops them."""
        try:
            project, user = _project(request, project_name, True)
            records = service(project, user).records
            body = await _request_body(request)
            name = artifacts.clean(str(body.get("path", "")))
            if not name or "/" in name:
                raise MlflowApiError("INVALID_PARAMETER_VALUE", "path must be the file's name")
            target = artifacts.clean(f"{path.strip('/')}/{name}" if path.strip("/") else name)
            staging = project.objects.root / "incoming-mlflow"
            if step == "create":
                parts = body.get("num_parts", 1)
                if not isinstance(parts, int) or not 1 <= parts <= artifacts.MAX_PARTS:
                    raise MlflowApiError(
                        "INVALID_PARAMETER_VALUE", f"num_parts must be 1 to {artifacts.MAX_PARTS}"
                    )
                upload = artifacts.start_upload(staging, target, parts)
                base = str(request.base_url).rstrip("/")
                return JSONResponse(
                    {
                        "upload_id": upload,
                        "credentials": [
                            {
                                "part_number": n,
                                "url": f"{base}{MPU}/part/{project.name}/{upload}/{n}",
                                "headers": {},
                            }
                            for n in range(1, parts + 1)
                        ],
                    }
                )
            where = artifacts.upload_dir(staging, str(body.get("upload_id", "")), target)
            if step == "abort":
                await run_in_threadpool(artifacts.drop_upload, where)
                return JSONResponse({})
            if step != "complete":
                raise MlflowApiError("ENDPOINT_NOT_FOUND", f"no multipart step {step[:20]!r}")
            joined = await run_in_threadpool(artifacts.join_parts, where)
            try:
                digest, size = await run_in_threadpool(
                    artifacts.store_file, project.objects, joined
                )
                await run_in_threadpool(
                    artifacts.record, project.workspace(), records, target, digest, size
                )
            finally:
                await run_in_threadpool(artifacts.drop_upload, where)
        except LockstepError as exc:
            return _mlflow_error(exc)
        return JSONResponse({})

    async def upload_part(request: Request, project: str, upload: str, number: str) -> Response:
        """One part of a multipart upload, streamed to disk (no token: the upload id is
        the capability)."""
        from lockstep.errors import InvalidValue, ProjectNotFound

        try:
            try:
                found = request.app.state.projects.get(project)
            except InvalidValue:
                raise ProjectNotFound(project) from None
            staging = found.objects.root / "incoming-mlflow"
            part = artifacts.part_path(artifacts.upload_dir(staging, upload), number)
            with open(part, "wb") as handle:
                async for piece in request.stream():
                    handle.write(piece)
        except LockstepError as exc:
            return _mlflow_error(exc)
        return JSONResponse({}, headers={"etag": f'"{number}"'})

    for scoped_prefix in ("", SCOPED):
        app.add_api_route(
            scoped_prefix + MPU + "/{step}/{path:path}",
            multipart if not scoped_prefix else _scoped_multipart(multipart),
            methods=["POST"],
            include_in_schema=False,
        )
    app.add_api_route(
        MPU + "/part/{project}/{upload}/{number}",
        upload_part,
        methods=["PUT"],
        include_in_schema=False,
    )

    app.add_api_route(ARTIFACTS, listing, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        ARTIFACTS + "/{path:path}",
        proxy,
        methods=["GET", "PUT", "DELETE"],
        include_in_schema=False,
    )

    async def scoped_proxy(request: Request, project: str, path: str) -> Response:
        return await proxy(request, path, project)

    async def scoped_listing(request: Request, project: str) -> Response:
        return await listing(request, project)

    app.add_api_route(SCOPED + ARTIFACTS, scoped_listing, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        SCOPED + ARTIFACTS + "/{path:path}",
        scoped_proxy,
        methods=["GET", "PUT", "DELETE"],
        include_in_schema=False,
    )

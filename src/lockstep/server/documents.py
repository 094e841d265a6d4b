"""Push and pull with a server: the documents a remote keeps, made from the project's
store when read, and, when written, staged per push and imported at its end by the same
checked pull a directory or S3 remote gets (every document is validated before any of
it is used)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lockstep.core.canonical import canonical_json
from lockstep.errors import RemoteDocumentRefused, RemoteError, UsageError
from lockstep.server.projects import Project
from lockstep.server.scope import Scope

KINDS = ("datasets", "models", "runs")
_SESSION = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json")


def _session(value: str) -> str:
    if not _SESSION.fullmatch(value):
        raise UsageError("session must be 32 lowercase hex characters")
    return value


def _document_name(kind: str, name: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"documents are {', '.join(KINDS)}, not {kind[:40]!r}")
    if not _NAME.fullmatch(name):
        raise UsageError("a document name is NAME.json, NAME of 1-128 A-Z a-z 0-9 . _ -")
    return f"{kind}/{name}"


# A push that never ended leaves its staged documents; they go after this long.
STALE_SECONDS = 24 * 3600


def _staging(project: Project, session: str) -> Path:
    return project.workspace().store_dir / "incoming" / session


def _drop_stale(project: Project) -> None:
    """Remove what pushes that never ended staged more than STALE_SECONDS ago."""
    import time

    incoming = project.workspace().store_dir / "incoming"
    if not incoming.is_dir():
        return
    cutoff = time.time() - STALE_SECONDS
    for staged in incoming.iterdir():
        try:
            if staged.stat().st_mtime < cutoff:
                shutil.rmtree(staged, ignore_errors=True)
        except FileNotFoundError:
            continue  # another request removed it


def list_documents(project: Project, kind: str) -> list[str]:
    workspace = project.workspace()
    if kind == "datasets":
        names = workspace.dataset_records().dataset_names()
    elif kind == "models":
        names = workspace.model_records().model_names()
    else:
        names = [r.id for r in workspace.meta.search()]
    return [f"{kind}/{n}.json" for n in names]


def read_document(project: Project, kind: str, name: str) -> bytes:
    from lockstep.data import sync

    workspace = project.workspace()
    stem = name.removesuffix(".json")
    if kind == "datasets":
        if stem not in workspace.dataset_records().dataset_names():
            raise LookupError(stem)
        return canonical_json(sync.dataset_document(workspace, stem))
    if kind == "models":
        if stem not in workspace.model_records().model_names():
            raise LookupError(stem)
        return canonical_json(sync.model_document(workspace.model_records(), stem))
    return canonical_json(sync.run_document(workspace, stem))


def import_session(project: Project, session: str) -> list[str]:
    """Import what a push staged, checked as a pull checks; returns the conflicts."""
    from lockstep.data.sync import pull
    from lockstep.objects.remote import DirectoryRemote

    staged = _staging(project, session)
    if not staged.is_dir():
        return []
    try:
        report = pull(project.workspace(), DirectoryRemote(str(staged)))
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return list(report.conflicts)


def add_routes(api: APIRouter) -> None:
    @api.get("/documents/{kind}")
    def documents(project: Scope, kind: str) -> dict[str, Any]:
        """The documents a pull reads: one per dataset, model and run."""
        _document_name(kind, "x.json")
        return {"names": list_documents(project, kind)}

    @api.get("/documents/{kind}/{name}")
    def document(project: Scope, kind: str, name: str) -> Response:
        from lockstep.errors import RunNotFound

        _document_name(kind, name)
        try:
            body = read_document(project, kind, name)
        except LookupError:
            raise RunNotFound(name.removesuffix(".json")) from None
        return Response(body, media_type="application/json")

    @api.put("/documents/{kind}/{name}", status_code=204)
    async def stage(
        project: Scope, kind: str, name: str, request: Request, session: str = Query(...)
    ) -> Response:
        """One document of a push, kept until the push ends (nothing imported yet)."""
        relative = _document_name(kind, name)
        staging = _staging(project, _session(session))
        if not staging.exists():  # a new push: a moment to sweep what old ones left
            await run_in_threadpool(_drop_stale, project)
        target = staging / "meta" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        with open(fd, "wb") as handle:
            handle.write(await request.body())
        Path(tmp).replace(target)
        return Response(status_code=204)

    @api.post("/documents/import")
    async def import_staged(project: Scope, session: str = Query(...)) -> dict[str, Any]:
        """End of a push: import its documents (checked whole first); the conflicts."""
        try:
            conflicts = await run_in_threadpool(import_session, project, _session(session))
        except RemoteDocumentRefused as exc:
            raise UsageError(
                f"the server refused {exc.document}: {exc.field} must be {exc.rule}; nothing "
                "of this push was imported"
            ) from None
        except RemoteError as exc:
            raise UsageError(str(exc)) from None
        return {"conflicts": conflicts}

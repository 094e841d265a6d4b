"""The application as uvicorn builds it in each worker process, from what
``lockstep server`` put in the environment."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

_DB, _STORE, _OBJECTS, _S3, _ENDPOINT, _AUTH, _LOG = (
    "LOCKSTEP_SERVE_DB",
    "LOCKSTEP_SERVE_STORE",
    "LOCKSTEP_SERVE_OBJECTS",
    "LOCKSTEP_SERVE_S3",
    "LOCKSTEP_SERVE_ENDPOINT",
    "LOCKSTEP_SERVE_AUTH",
    "LOCKSTEP_SERVE_ACCESS_LOG",
)


def configure(
    db_url: str,
    store_dir: Path,
    objects: Path,
    *,
    s3: str | None,
    endpoint_url: str | None,
    auth: bool,
    access_log: bool,
) -> None:
    """Hand the server's settings to the worker processes uvicorn starts."""
    os.environ[_DB] = db_url
    os.environ[_S3] = s3 or ""
    os.environ[_ENDPOINT] = endpoint_url or ""
    os.environ[_STORE] = str(store_dir)
    os.environ[_OBJECTS] = str(objects)
    os.environ[_AUTH] = "1" if auth else ""
    os.environ[_LOG] = "1" if access_log else ""


def build() -> FastAPI:
    """One worker's application over the configured store."""
    from lockstep.meta.store import MetaStore
    from lockstep.server.app import create_app
    from lockstep.server.projects import Projects

    url = os.environ[_DB]
    if os.environ.get(_LOG):
        from lockstep.server.observe import enable_access_log

        enable_access_log()
    s3 = os.environ.get(_S3) or None
    projects = Projects(
        MetaStore.open(url),
        url,
        Path(os.environ[_STORE]),
        Path(os.environ[_OBJECTS]),
        s3=(s3, os.environ.get(_ENDPOINT) or None) if s3 else None,
    )
    return create_app(projects, auth=bool(os.environ.get(_AUTH)))

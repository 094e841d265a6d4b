"""What a request may reach: its token (with --auth), the project its path names, and
that project's store, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from lockstep.errors import AccessDenied, InvalidValue, NotAuthenticated, ProjectNotFound
from lockstep.meta.store import MetaStore
from lockstep.server.access import Token
from lockstep.server.projects import Project

API = "/api/v1"
TOKEN_COOKIE = "lockstep_token"
CSRF_COOKIE = "lockstep_csrf"
CSRF_HEADER = "x-csrf-token"


def _csrf_ok(request: Request) -> bool:
    import hmac

    sent, kept = request.headers.get(CSRF_HEADER, ""), request.cookies.get(CSRF_COOKIE, "")
    return bool(kept) and hmac.compare_digest(sent.encode(), kept.encode())


def run_id_of(value: str) -> str:
    """A run id from a path: one that cannot exist matches nothing (404, never 400)."""
    from lockstep.core import validate
    from lockstep.errors import RunNotFound

    try:
        return validate.run_id(value)
    except InvalidValue:
        raise RunNotFound(value[:80]) from None


# POSTs that only read (a body holds what a query string could not).
_READING_POSTS = frozenset({"/outputs/recorded", "/objects/missing"})
PROJECT_API = API + "/projects/{project}"


def request_token(request: Request) -> Token | None:
    """The request's live token; None when the server runs without --auth."""
    state = request.app.state
    if not state.auth:
        return None
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if not request.headers.get("authorization") and TOKEN_COOKIE in request.cookies:
        # The hub's login cookie; a write with it must also prove it comes from the
        # hub's own page (double submit: a cross-site page cannot read the CSRF cookie).
        scheme, secret = "bearer", request.cookies[TOKEN_COOKIE]
        if request.method not in ("GET", "HEAD") and not _csrf_ok(request):
            raise AccessDenied(
                "a write with the hub's login cookie needs its CSRF token; reload the page"
            )
    if scheme.lower() != "bearer" or not secret.strip():
        raise NotAuthenticated(
            "this server needs a token: set LOCKSTEP_TOKEN or run lockstep login URL"
        )
    token: Token | None = state.projects.access.authenticate(secret.strip())
    if token is None:
        raise NotAuthenticated(
            "the server does not know this token (wrong or revoked); ask an admin for a new one"
        )
    request.state.user = token.user  # for the access log
    return token


def _needed_role(request: Request) -> str:
    route = request.scope.get("route")
    path = str(getattr(route, "path", "")).removeprefix(PROJECT_API)
    if path.startswith("/tokens"):
        return "admin"
    if path.startswith("/records/"):
        from lockstep.remote.records import METHODS

        params = request.path_params
        return METHODS.get(params.get("kind", ""), {}).get(params.get("method", ""), "write")
    if request.method in ("GET", "HEAD") or path in _READING_POSTS:
        return "read"
    return "write"


def request_project(
    request: Request,
    project: str,
    token: Token | None = Depends(request_token),  # noqa: B008
) -> Project:
    """The project the path names, if the token may see it (another project is 404, so
    its existence does not leak) and do what the request asks (else 403)."""
    if token is not None and token.project != project:
        raise ProjectNotFound(project)
    try:
        found = request.app.state.projects.get(project)
    except InvalidValue:
        raise ProjectNotFound(project) from None
    needed = _needed_role(request)
    if token is not None and not token.allows(needed):
        raise AccessDenied(f"this token is {token.role}-only here; this needs a {needed} token")
    return cast(Project, found)


def _request_meta(project: Project = Depends(request_project)) -> MetaStore:  # noqa: B008
    return project.meta


Meta = Annotated[MetaStore, Depends(_request_meta)]
Scope = Annotated[Project, Depends(request_project)]
Caller = Annotated[Token | None, Depends(request_token)]

"""``lockstep server``: serve a store for a team, and manage its projects and tokens."""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lockstep.errors import UsageError

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served_store(obj: Any, db_url: str | None) -> tuple[str, Path]:
    """The metadata URL and store directory a server keeps: --db, else the store of
    the project it starts in (its own database, never a [server] url its config names:
    that would be this server, or another). Objects and staged pushes go in the store
    directory."""
    from lockstep.workspace import check_database_file, default_database, locate, metadata_url

    store_dir, _ = locate(obj.settings, create=True)
    if db_url:
        return db_url, store_dir
    settings = obj.settings.with_config(store_dir)
    if not settings.db_url:
        check_database_file(default_database(store_dir), store_dir)
    return metadata_url(settings, store_dir), store_dir


def _db_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", "db_url", help="The server's metadata URL (default: this project's store)."
    )(function)


def _access(obj: Any, db_url: str | None) -> Any:
    from lockstep.meta.store import MetaStore
    from lockstep.server.access import Access

    url, _ = served_store(obj, db_url)
    return Access(MetaStore.open(url).engine)


def _whoami() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return f"uid{os.getuid()}@{socket.gethostname()}"


def _serve(
    url: str,
    store_dir: Path,
    objects: Path,
    *,
    s3: str | None,
    endpoint_url: str | None,
    auth: bool,
    quiet: bool,
    host: str,
    port: int,
    workers: int,
    ssl: tuple[str, str] | None,
    announce: bool = True,
) -> None:
    """Run the server (API and hub) until SIGTERM or Ctrl-C."""
    import uvicorn

    from lockstep.meta.store import MetaStore
    from lockstep.server import factory

    meta = MetaStore.open(url)  # migrated here once, before any worker starts
    where = meta.location
    meta.close()
    scheme = "https" if ssl else "http"
    if announce:
        click.echo(
            f"lockstep server on {scheme}://{host}:{port} serving {where}, objects in "
            f"{s3 or objects}"
            + (
                ", tokens required (--auth)"
                if auth
                else " WITHOUT authentication (--insecure)"
                if not _loopback(host)
                else ", loopback only, no authentication (pass --auth for tokens)"
            ),
            err=True,
        )
    factory.configure(
        url,
        store_dir,
        objects,
        s3=s3,
        endpoint_url=endpoint_url,
        auth=auth,
        access_log=not quiet,
    )
    # uvicorn stops on SIGTERM or Ctrl-C after answering the requests in flight
    # (at most 30 s), then the stores are closed with what they committed.
    uvicorn.run(
        "lockstep.server.factory:build",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        ssl_certfile=ssl[0] if ssl else None,
        ssl_keyfile=ssl[1] if ssl else None,
    )


def register(cli: click.Group, pass_context: Decorator) -> None:
    """Attach the server commands to the main group."""

    @cli.command("login")
    @click.argument("url")
    @click.option(
        "--project", "project_name", default="default", show_default=True, help="Server project."
    )
    @click.option(
        "--token-stdin", is_flag=True, help="Read the token from standard input (scripts, CI)."
    )
    @pass_context
    def login(obj: Any, url: str, project_name: str, token_stdin: bool) -> None:
        """Use the server at URL for this project: the URL and project go in the project's
        config, the token in your user config directory (mode 0600), never in the project."""
        import sys

        from lockstep import credentials
        from lockstep.core import validate
        from lockstep.remote.meta import HttpMetaStore
        from lockstep.settings import server_url as parse_url
        from lockstep.settings import write_config
        from lockstep.workspace import locate

        server_url = parse_url(url, "URL")
        assert server_url is not None
        validate.project(project_name)
        if token_stdin:
            token = sys.stdin.readline().strip()
        else:
            token = click.prompt(
                "token (empty for a server without --auth)",
                default="",
                hide_input=True,
                show_default=False,
            ).strip()
        client = HttpMetaStore(server_url, token or None, project=project_name)
        try:
            identity = client.whoami()  # the token and the project are checked now
            client.experiments()
        finally:
            client.close()
        saved = credentials.save(server_url, token or None, project_name)
        store_dir, _ = locate(obj.settings, create=True)
        config = dict(obj.settings.with_config(store_dir).config)
        config["server"] = {**config.get("server", {}), "url": server_url, "project": project_name}
        write_config(store_dir, config)
        who = f" as {identity['user']} ({identity['role']})" if identity.get("auth") else ""
        click.echo(
            f"this project now uses {server_url}, project {project_name}{who}; token kept in "
            f"{saved}"
        )

    @cli.command("logout")
    @click.argument("url", required=False)
    @pass_context
    def logout(obj: Any, url: str | None) -> None:
        """Forget the token kept for URL (default: this project's server) and stop using
        that server here."""
        from lockstep import credentials
        from lockstep.settings import write_config
        from lockstep.workspace import find_store_dir

        store_dir = find_store_dir(obj.settings)
        settings = obj.settings.with_config(store_dir) if store_dir else obj.settings
        target = url.rstrip("/") if url else settings.tracking_uri
        if not target:
            raise UsageError("no server to log out of; name its URL")
        forgot = credentials.forget(target)
        if store_dir is not None and settings.config.get("server", {}).get("url") == target:
            config = dict(settings.config)
            config.pop("server", None)
            write_config(store_dir, config)
        click.echo(f"logged out of {target}" + ("" if forgot else " (no token was kept)"))

    @cli.group("server", invoke_without_command=True)
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option(
        "--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port."
    )
    @_db_option
    @click.option(
        "--objects",
        "objects_at",
        help="Where the objects go: a directory, or s3://bucket/prefix (clients then "
        "transfer them with S3 directly). Default: the store's objects directory.",
    )
    @click.option("--endpoint-url", help="The S3 endpoint, for S3-compatible servers.")
    @click.option(
        "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes."
    )
    @click.option("--auth", is_flag=True, help="Require a bearer token on every API request.")
    @click.option(
        "--insecure",
        is_flag=True,
        help="Listen on a non-loopback address without --auth.",
    )
    @click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True), help="TLS cert.")
    @click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True), help="TLS key.")
    @click.option("--quiet", is_flag=True, help="No access log (one JSON line per request).")
    @click.pass_context
    def server(
        ctx: click.Context,
        host: str,
        port: int,
        db_url: str | None,
        objects_at: str | None,
        endpoint_url: str | None,
        workers: int,
        auth: bool,
        insecure: bool,
        ssl_certfile: str | None,
        ssl_keyfile: str | None,
        quiet: bool,
    ) -> None:
        """Serve this project's runs, metrics and objects over HTTP (the API under
        /api/v1, described at /api/v1/openapi.json)."""
        if ctx.invoked_subcommand is not None:
            return
        try:
            import uvicorn  # noqa: F401
        except ImportError:
            raise UsageError("the server needs its extra: pip install 'lockstep[server]'") from None

        if not _loopback(host) and not auth and not insecure:
            raise UsageError(
                f"refusing to listen on {host} without authentication; pass --auth (and make "
                "tokens with lockstep server token create), or --insecure"
            )
        if bool(ssl_certfile) != bool(ssl_keyfile):
            raise UsageError("TLS needs both --ssl-certfile and --ssl-keyfile")
        url, store_dir = served_store(ctx.obj, db_url)
        s3 = objects_at if objects_at and objects_at.startswith("s3://") else None
        if s3:
            from lockstep.objects.remote import S3Remote

            S3Remote(s3, endpoint_url).require()  # the bucket answers now, or one line
            objects = (store_dir / "cache" / "server-objects").resolve()
        else:
            if endpoint_url:
                raise UsageError("--endpoint-url goes with --objects s3://bucket/prefix")
            objects = (Path(objects_at) if objects_at else store_dir / "objects").resolve()
        _serve(
            url,
            store_dir,
            objects,
            s3=s3,
            endpoint_url=endpoint_url,
            auth=auth,
            quiet=quiet,
            host=host,
            port=port,
            workers=workers,
            ssl=(ssl_certfile, ssl_keyfile) if ssl_certfile and ssl_keyfile else None,
        )

    @cli.command("ui")
    @click.option(
        "--port", default=5100, show_default=True, type=click.IntRange(0, 65535), help="Port."
    )
    @click.option("--open", "open_browser", is_flag=True, help="Open the hub in a browser.")
    @click.pass_context
    def ui(ctx: click.Context, port: int, open_browser: bool) -> None:
        """Serve the hub on this project's store at http://127.0.0.1:PORT (loopback only,
        no login; for a team, lockstep server serves the same hub)."""
        try:
            import uvicorn  # noqa: F401
        except ImportError:
            raise UsageError("the hub needs its extra: pip install 'lockstep[server]'") from None
        url, store_dir = served_store(ctx.obj, None)
        address = f"http://127.0.0.1:{port}/"
        if open_browser:
            import threading
            import webbrowser

            threading.Timer(1.0, webbrowser.open, (address,)).start()
        click.echo(f"lockstep hub on {address} (Ctrl-C to stop)", err=True)
        _serve(
            url,
            store_dir,
            (store_dir / "objects").resolve(),
            s3=None,
            endpoint_url=None,
            auth=False,
            quiet=True,
            host="127.0.0.1",
            port=port,
            workers=1,
            ssl=None,
            announce=False,
        )

    @server.command("migrate")
    @_db_option
    @pass_context
    def server_migrate(obj: Any, db_url: str | None) -> None:
        """Bring the server's database (and every project's) to this lockstep's schema."""
        from lockstep.meta import migrate
        from lockstep.meta.engine import create_engine
        from lockstep.meta.store import MetaStore
        from lockstep.server.access import Access
        from lockstep.server.projects import project_url

        url, _ = served_store(obj, db_url)
        engine = create_engine(url)
        before, after = migrate.upgrade(engine)
        click.echo(f"default: {before or 'empty'} -> {after}")
        for name in Access(engine).projects()[1:]:
            project_engine = create_engine(project_url(url, name))
            before, after = migrate.upgrade(project_engine)
            project_engine.dispose()
            click.echo(f"{name}: {before or 'empty'} -> {after}")
        engine.dispose()
        MetaStore.open(url).close()

    @server.group("project")
    def project() -> None:
        """The server's projects: namespaces for runs, datasets and models."""

    @project.command("create")
    @click.argument("name")
    @_db_option
    @pass_context
    def project_create(obj: Any, name: str, db_url: str | None) -> None:
        """Make a project."""
        from lockstep.meta.store import MetaStore
        from lockstep.server.projects import Projects

        url, store_dir = served_store(obj, db_url)
        projects = Projects(MetaStore.open(url), url, store_dir, store_dir / "objects")
        made = projects.create(name)
        projects.close()
        click.echo(f"project {name} " + ("created" if made else "exists already"))

    @project.command("ls")
    @_db_option
    @pass_context
    def project_ls(obj: Any, db_url: str | None) -> None:
        """List the projects."""
        for name in _access(obj, db_url).projects():
            click.echo(name)

    @server.group("token")
    def token() -> None:
        """Bearer tokens: each for one user, one project and one role."""

    @token.command("create")
    @click.option("--user", required=True, help="Whom the token is for.")
    @click.option(
        "--project", "project_name", default="default", show_default=True, help="Its project."
    )
    @click.option(
        "--role",
        type=click.Choice(["read", "write", "admin"]),
        default="write",
        show_default=True,
        help="read, write (and read), admin (and manage the project's tokens).",
    )
    @_db_option
    @pass_context
    def token_create(obj: Any, user: str, project_name: str, role: str, db_url: str | None) -> None:
        """Make a token and print it once (the server keeps only its hash)."""
        made, secret = _access(obj, db_url).create_token(user, project_name, role, _whoami())
        click.echo(secret)
        click.echo(
            f"token {made.id} for {user}: {role} on project {project_name}; it is shown only "
            "now, keep it (LOCKSTEP_TOKEN or lockstep login)",
            err=True,
        )

    @token.command("ls")
    @click.option("--project", "project_name", help="Only this project's tokens.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @_db_option
    @pass_context
    def token_ls(obj: Any, project_name: str | None, as_json: bool, db_url: str | None) -> None:
        """List tokens (never their secrets)."""
        tokens = _access(obj, db_url).tokens(project_name)
        if as_json:
            click.echo(json.dumps([t.to_json() for t in tokens], indent=2))
            return
        for t in tokens:
            state = "revoked" if t.revoked_at is not None else "live"
            click.echo(f"{t.id}  {t.user:<20} {t.project:<16} {t.role:<6} {state}")

    @token.command("revoke")
    @click.argument("token_id")
    @_db_option
    @pass_context
    def token_revoke(obj: Any, token_id: str, db_url: str | None) -> None:
        """Revoke a token: the server refuses it from the next request on."""
        revoked = _access(obj, db_url).revoke(token_id)
        click.echo(f"token {revoked.id} of {revoked.user} revoked")

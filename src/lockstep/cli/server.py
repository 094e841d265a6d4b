"""``lockstep server``: serve a store's metadata over HTTP for a team."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
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


def register(cli: click.Group, pass_context: Decorator) -> None:
    """Attach the server command to the main group."""

    @cli.command("server")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option(
        "--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port."
    )
    @click.option("--db", "db_url", help="Metadata URL (default: this project's store).")
    @click.option(
        "--insecure",
        is_flag=True,
        help="Listen on a non-loopback address without authentication.",
    )
    @click.option("--quiet", is_flag=True, help="No access log (one JSON line per request).")
    @pass_context
    def server(
        obj: Any, host: str, port: int, db_url: str | None, insecure: bool, quiet: bool
    ) -> None:
        """Serve this project's runs and metrics over HTTP (the API under /api/v1)."""
        try:
            import uvicorn
        except ImportError:
            raise UsageError("the server needs its extra: pip install 'lockstep[server]'") from None

        from lockstep.meta.store import MetaStore
        from lockstep.server.app import create_app
        from lockstep.workspace import (
            check_database_file,
            default_database,
            locate,
            metadata_url,
        )

        if not _loopback(host) and not insecure:
            raise UsageError(
                f"refusing to listen on {host} without authentication (tokens are not "
                "available yet); listen on 127.0.0.1 behind a proxy, or pass --insecure"
            )
        if db_url:
            url = db_url
        else:
            # The store's own metadata, never a [server] url its config may name (that
            # would be this server, or another).
            store_dir, _ = locate(obj.settings, create=True)
            settings = obj.settings.with_config(store_dir)
            if not settings.db_url:
                check_database_file(default_database(store_dir), store_dir)
            url = metadata_url(settings, store_dir)
        meta = MetaStore.open(url)
        where = meta.location
        click.echo(
            f"lockstep server on http://{host}:{port} serving {where}"
            + ("" if _loopback(host) else " WITHOUT authentication (--insecure)"),
            err=True,
        )
        if not quiet:
            from lockstep.server.observe import enable_access_log

            enable_access_log()
        # uvicorn stops on SIGTERM or Ctrl-C after answering the requests in flight.
        uvicorn.run(create_app(meta), host=host, port=port, log_level="warning", access_log=False)

"""``lockstep remote ...``, ``lockstep push`` and ``lockstep pull``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lockstep.errors import UsageError

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _remotes(settings: Any) -> dict[str, Any]:
    return dict(settings.config.get("remotes", {}))


def _choose(workspace: Any, name: str | None) -> Any:
    from lockstep.objects.remote import open_remote

    remotes = _remotes(workspace.settings)
    if not remotes:
        raise UsageError("no remote configured; add one with `lockstep remote add NAME URL`")
    name = name or workspace.settings.config.get("core", {}).get("remote") or next(iter(remotes))
    if name not in remotes:
        raise UsageError(f"no remote named {name!r}; known: {', '.join(remotes)}")
    entry = remotes[name]
    return open_remote(entry["url"], entry.get("endpoint_url"))


class _RichProgress:
    """Rich progress bars on stderr for push and pull."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=False,
        )

    def __call__(self, label: str, total: int) -> Callable[[], None]:
        task = self.progress.add_task(label, total=total)
        return lambda: self.progress.advance(task)


def register(cli: click.Group, pass_context: Decorator) -> None:
    @cli.group()
    def remote() -> None:
        """Remotes (S3 or a directory) to push runs, datasets and their bytes to."""

    @remote.command("add")
    @click.argument("name")
    @click.argument("url")
    @click.option("--endpoint-url", help="S3-compatible server, e.g. http://127.0.0.1:8333.")
    @click.option("--default", "make_default", is_flag=True, help="Use it when none is named.")
    @pass_context
    def remote_add(
        obj: Any, name: str, url: str, endpoint_url: str | None, make_default: bool
    ) -> None:
        """Add remote NAME at URL (s3://bucket/prefix or a directory path)."""
        from lockstep.core import validate
        from lockstep.objects.remote import open_remote
        from lockstep.settings import write_config

        validate.name(name, "remote name")
        workspace = obj.workspace(create=True)
        open_remote(url, endpoint_url)  # refuse malformed URLs now, not at push time
        config = {
            k: dict(v) if isinstance(v, dict) else v for k, v in workspace.settings.config.items()
        }
        remotes = config.setdefault("remotes", {})
        entry = {"url": url, **({"endpoint_url": endpoint_url} if endpoint_url else {})}
        remotes[name] = entry
        if make_default or len(remotes) == 1:
            config.setdefault("core", {})["remote"] = name
        write_config(workspace.store_dir, config)
        click.echo(f"remote {name} -> {url}")

    @remote.command("ls")
    @pass_context
    def remote_ls(obj: Any) -> None:
        """List remotes."""
        workspace = obj.workspace()
        default = workspace.settings.config.get("core", {}).get("remote")
        for name, entry in _remotes(workspace.settings).items():
            mark = " (default)" if name == default else ""
            endpoint = f" via {entry['endpoint_url']}" if entry.get("endpoint_url") else ""
            click.echo(f"{name}{mark}: {entry['url']}{endpoint}")

    @remote.command("rm")
    @click.argument("name")
    @pass_context
    def remote_rm(obj: Any, name: str) -> None:
        """Forget remote NAME (nothing on the remote is deleted)."""
        from lockstep.settings import write_config

        workspace = obj.workspace()
        config = {
            k: dict(v) if isinstance(v, dict) else v for k, v in workspace.settings.config.items()
        }
        if name not in config.get("remotes", {}):
            raise UsageError(f"no remote named {name!r}")
        del config["remotes"][name]
        if config.get("core", {}).get("remote") == name:
            del config["core"]["remote"]
        write_config(workspace.store_dir, config)

    @cli.command()
    @click.argument("name", required=False)
    @pass_context
    def push(obj: Any, name: str | None) -> int:
        """Send objects the remote lacks, then the runs', datasets' and models' metadata."""
        from lockstep.data.sync import push as push_all

        workspace = obj.workspace()
        target = _choose(workspace, name)
        progress = _RichProgress()
        with progress.progress:
            report = push_all(workspace, target, progress)
        click.echo(
            f"pushed {report.objects_sent} objects ({report.objects_present} already "
            f"there), {report.runs} runs, {report.datasets} datasets, {report.models} models "
            f"to {target.url}"
        )
        for conflict in report.conflicts:
            click.echo(f"conflict: {conflict}", err=True)
        return 1 if report.conflicts else 0

    @cli.command()
    @click.argument("name", required=False)
    @pass_context
    def pull(obj: Any, name: str | None) -> int:
        """Fetch the remote's runs, datasets and models and the objects missing here."""
        from lockstep.data.sync import pull as pull_all

        workspace = obj.workspace(create=True)
        source = _choose(workspace, name)
        progress = _RichProgress()
        with progress.progress:
            report = pull_all(workspace, source, progress)
        click.echo(
            f"pulled {report.objects_sent} objects, {report.runs} runs, "
            f"{report.datasets} datasets, {report.models} models from {source.url}"
            + (
                f" ({report.runs_updated} runs that had not ended then, updated)"
                if report.runs_updated
                else ""
            )
        )
        for conflict in report.conflicts:
            click.echo(f"conflict: {conflict}", err=True)
        return 1 if report.conflicts else 0

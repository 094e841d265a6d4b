"""``lockstep data ...``, ``lockstep fsck`` and ``lockstep gc``: datasets and the object store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lockstep.cli import render
from lockstep.errors import UsageError


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _changes(changes: Any) -> None:
    out = render.console()
    if not changes:
        out.print("no changes")
        return
    for kind, style in (("added", "green"), ("removed", "red"), ("modified", "yellow")):
        for item in getattr(changes, kind):
            size = item.get("size", item.get("size_now", 0))
            out.print(f"[{style}]{kind:9s}[/] {item['path']}  {_size(size)}")


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def register(cli: click.Group, pass_context: Decorator) -> None:
    """Attach the data commands to the main group."""

    @cli.group()
    def data() -> None:
        """Datasets versioned by content: add, inspect, compare, check out."""

    @data.command("add")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--name", help="Dataset name (default: the path's name).")
    @click.option("-m", "--message", default="", help="What changed in this version.")
    @pass_context
    def data_add(obj: Any, path: Path, name: str | None, message: str) -> None:
        """Record PATH (a file or a directory) as a new version of a dataset."""
        workspace = obj.workspace(create=True)
        store = workspace.store_dir.resolve()
        resolved = path.resolve()
        if resolved == store or store in resolved.parents or resolved in store.parents:
            raise UsageError(
                f"{path} is or holds lockstep's own store ({store}); version your data, "
                "not the store"
            )
        result = workspace.data().add(path, name=name, message=message)
        version = result.version
        if result.skipped_links:
            shown = ", ".join(result.skipped_links[:5])
            more = (
                f" and {len(result.skipped_links) - 5} more"
                if len(result.skipped_links) > 5
                else ""
            )
            click.echo(
                f"warning: {len(result.skipped_links)} symbolic links under {path} are not "
                f"versioned (links are not followed): {shown}{more}",
                err=True,
            )
        if result.created:
            click.echo(
                f"{version.ref}: {version.file_count} files, {_size(version.size)} "
                f"({result.hashed} hashed, {result.stored} new objects)"
            )
        else:
            click.echo(
                f"{version.ref} unchanged: the content equals the latest version; no new version"
            )

    @data.command("ls")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def data_ls(obj: Any, as_json: bool) -> None:
        """List datasets with their latest version."""
        versions = obj.workspace().data().records.latest_versions()
        if as_json:
            render.print_json([v.to_json() for v in versions])
            return
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for header in ("dataset", "latest", "files", "size", "added", "path", "tags"):
            table.add_column(header)
        for v in versions:
            table.add_row(
                v.dataset,
                f"v{v.number}",
                str(v.file_count),
                _size(v.size),
                render.when(v.created_at),
                v.source_path,
                ", ".join(v.tags),
            )
        render.console().print(
            table if versions else "no datasets; add one with `lockstep data add PATH`"
        )

    @data.command("log")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def data_log(obj: Any, name: str, as_json: bool) -> None:
        """Versions of dataset NAME with the runs that used or produced them."""
        records = obj.workspace().data().records
        versions = records.versions(name)
        rows = [
            {**v.to_json(), "runs": [{"run": r, "role": role} for r, role in records.runs_of(v.id)]}
            for v in reversed(versions)
        ]
        if as_json:
            render.print_json(rows)
            return
        out = render.console()
        for row in rows:
            tags = f" ({', '.join(row['tags'])})" if row["tags"] else ""
            out.print(
                f"[bold]v{row['version']}[/]{tags}  {render.when(row['created_at'])}  "
                f"{row['files']} files, {_size(row['size'])}  "
                f"manifest {row['manifest'][:12]}  {row['message']}"
            )
            for run in row["runs"]:
                out.print(f"    {run['role']} of run {run['run']}")

    @data.command("status")
    @click.argument("name", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def data_status(obj: Any, name: str | None, as_json: bool) -> int:
        """What changed where each dataset (or NAME) was added from, since its last version."""
        from lockstep.data.quick_status import StatusShortcut

        # The walks start before the metadata store loads, and may make loading it moot.
        shortcut = StatusShortcut(obj.settings, name)
        answered = shortcut.answer()
        rows: list[tuple[str, int, str, Any]]  # dataset, number, source path, changes
        if answered is not None:
            rows = [(p.dataset, p.number, p.source_path, changes) for p, changes in answered]
        else:
            data = obj.workspace().data()
            versions = [data.records.resolve(name)] if name else data.records.latest_versions()
            rows = [
                (
                    v.dataset,
                    v.number,
                    v.source_path,
                    data.status(v, shortcut.pending.get(v.dataset)),
                )
                for v in versions
            ]
        if as_json:
            render.print_json(
                {d: {"version": f"v{n}", **changes.to_json()} for d, n, _, changes in rows}
            )
        else:
            for dataset, number, source, changes in rows:
                render.console().print(f"[bold]{dataset}@v{number}[/] ({source})")
                _changes(changes)
        return 0

    @data.command("diff")
    @click.argument("ref_a")
    @click.argument("ref_b")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def data_diff(obj: Any, ref_a: str, ref_b: str, as_json: bool) -> None:
        """Files added, removed and modified between two versions (NAME@v1 NAME@v2)."""
        data = obj.workspace().data()
        changes = data.diff(data.records.resolve(ref_a), data.records.resolve(ref_b))
        if as_json:
            render.print_json(changes.to_json())
        else:
            _changes(changes)

    @data.command("checkout")
    @click.argument("ref")
    @click.option(
        "--to",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write the files here (default: where the version was added from).",
    )
    @click.option("--force", is_flag=True, help="Overwrite local changes.")
    @click.option("--verify", is_flag=True, help="Re-hash every object before using it.")
    @pass_context
    def data_checkout(obj: Any, ref: str, to: Path | None, force: bool, verify: bool) -> None:
        """Write the files of version REF (NAME@v3, NAME@latest, NAME@tag)."""
        workspace = obj.workspace()
        data = workspace.data()
        version = data.records.resolve(ref)
        result = data.checkout(version, to=to, force=force, verify=verify)
        click.echo(
            f"{result['version']} -> {result['target']}: {result['written']} written, "
            f"{result['unchanged']} already there"
            + (f", {len(result['removed'])} removed" if result["removed"] else "")
            + (f" (by {', '.join(result['links'])})" if result["links"] else "")
        )
        if result["not_in_version"]:
            click.echo(
                f"left in place, not part of {result['version']}: "
                + ", ".join(result["not_in_version"][:10]),
                err=True,
            )

    @data.command("tag")
    @click.argument("ref")
    @click.argument("tag")
    @pass_context
    def data_tag(obj: Any, ref: str, tag: str) -> None:
        """Name version REF with TAG (then refer to it as NAME@TAG)."""
        records = obj.workspace().data().records
        version = records.resolve(ref)
        records.tag(version, tag)
        click.echo(f"{version.dataset}@{tag} -> v{version.number}")

    @data.command("rm")
    @click.argument("ref")
    @pass_context
    def data_rm(obj: Any, ref: str) -> None:
        """Delete version REF (its objects go at the next `lockstep gc` if nothing else uses
        them)."""
        records = obj.workspace().data().records
        version = records.resolve(ref)
        records.delete_version(version)
        click.echo(f"deleted {version.ref}")

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def fsck(obj: Any, as_json: bool) -> int:
        """Re-hash every object; name each corrupt or missing one and the model versions
        they break (exit 1 if any)."""
        from lockstep.data.maintenance import fsck as run_fsck

        report = run_fsck(obj.workspace())
        if as_json:
            render.print_json(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "corrupt": report.corrupt,
                    "missing": report.missing,
                    "models": report.models,
                }
            )
            return 0 if report.ok else 1
        for digest in report.corrupt:
            click.echo(f"corrupt: {digest}", err=True)
        for digest in report.missing:
            click.echo(f"missing: {digest}", err=True)
        for ref in report.models:
            click.echo(f"model version {ref} has a corrupt or missing file", err=True)
        click.echo(
            f"checked {report.checked} objects: "
            + (
                "all good"
                if report.ok
                else f"{len(report.corrupt)} corrupt, {len(report.missing)} missing"
            )
        )
        return 0 if report.ok else 1

    @cli.command()
    @click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
    @pass_context
    def gc(obj: Any, dry_run: bool) -> None:
        """Remove objects that no dataset version and no run refers to."""
        from lockstep.data.maintenance import gc as run_gc

        report = run_gc(
            obj.workspace(),
            dry_run=dry_run,
            waiting=lambda: click.echo(
                "lockstep: waiting for adds, pulls and runs storing objects to finish", err=True
            ),
        )
        verb = "would remove" if dry_run else "removed"
        click.echo(
            f"{verb} {len(report.removed)} objects ({_size(report.freed_bytes)}), "
            f"kept {report.kept}"
        )

"""``lockstep models ...`` and ``lockstep lineage``: model versions, aliases, and what made them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lockstep.cli import render
from lockstep.cli.data import _size

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _registry(obj: Any, *, create: bool = False) -> Any:
    from lockstep.models.registry import ModelRegistry

    return ModelRegistry(obj.workspace(create=create))


def _flags(version: Any) -> list[str]:
    return list(version.summary.get("flags", []))


def _file_line(path: str, summary: dict[str, Any]) -> str:
    """One line saying what a model file holds."""
    kind = summary.get("format", "unknown")
    size = _size(int(summary.get("size", 0)))
    if kind in {"pytorch", "safetensors"}:
        parts = [f"{summary.get('tensors', 0)} tensors", f"{summary.get('parameters', 0):,} values"]
        dtypes = summary.get("dtypes") or {}
        if dtypes:
            parts.append("/".join(sorted(dtypes)))
        state = summary.get("training_state")
        if isinstance(state, dict):
            present = [k for k, v in state.items() if v not in (False, None)]
            parts.append("training state: " + (", ".join(present) if present else "none"))
        detail = f"{kind} {summary.get('kind', '')}".strip() + ": " + ", ".join(parts)
    elif kind == "scikit-learn":
        detail = f"scikit-learn {summary.get('estimator')} ({summary.get('serializer')})"
    elif kind == "onnx":
        opset = summary.get("opset") or {}
        inputs = ", ".join(i["name"] for i in summary.get("inputs", []))
        outputs = ", ".join(o["name"] for o in summary.get("outputs", []))
        detail = (
            f"onnx opset {', '.join(f'{d} {v}' for d, v in opset.items()) or '?'}; "
            f"inputs {inputs or '-'}; outputs {outputs or '-'}"
            if opset or inputs
            else f"onnx ({summary.get('note', '')})"
        )
    else:
        detail = kind + (f" ({summary['note']})" if summary.get("note") else "")
    return f"{path}  {size}  {detail}"


def register(cli: click.Group, pass_context: Decorator) -> None:
    """Attach the models commands and lineage to the main group."""

    @cli.group()
    def models() -> None:
        """Model versions from runs: register, inspect, compare, get, promote."""

    @models.command("register")
    @click.argument("name")
    @click.option("--run", "run_ref", required=True, help="The run that wrote the files.")
    @click.option(
        "--path",
        "paths",
        multiple=True,
        required=True,
        help="A file or folder the run wrote or logged, relative to its working directory "
        "(repeatable).",
    )
    @click.option("-m", "--message", default="", help="What this version is.")
    @click.option("--alias", "aliases", multiple=True, help="Point this alias at it (repeatable).")
    @click.option("--allow-unfinished", is_flag=True, help="Register from a failed or running run.")
    @pass_context
    def models_register(
        obj: Any,
        name: str,
        run_ref: str,
        paths: tuple[str, ...],
        message: str,
        aliases: tuple[str, ...],
        allow_unfinished: bool,
    ) -> None:
        """Record files run RUN wrote as a new version of model NAME."""
        import posixpath

        registry = _registry(obj)
        run = obj.record(run_ref)
        cwd = str(run.sections.get("command", {}).get("cwd") or ".")
        if cwd.startswith("/"):
            cwd = "."
        relative = [posixpath.normpath(posixpath.join(cwd, p)) for p in paths]
        result = registry.register(
            name,
            run=run,
            paths=relative,
            message=message,
            aliases=aliases,
            allow_unfinished=allow_unfinished,
        )
        version = result.version
        if result.created:
            click.echo(
                f"{version.ref}: {version.file_count} files, {_size(version.size)} from run "
                f"{run.name} ({run.id[:12]})"
            )
        else:
            click.echo(f"{version.ref} has this content already; no new version")
        for flag in _flags(version):
            click.echo(f"warning: {flag}", err=True)
        for move in result.aliases:
            click.echo(f"{name}@{move.alias} -> v{move.to_number}")

    @models.command("ls")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def models_ls(obj: Any, as_json: bool) -> None:
        """List models with their latest version and aliases."""
        registry = _registry(obj)
        versions = registry.records.latest_versions()
        aliases = registry.records.all_aliases()
        rows = [{**v.to_json(), "aliases": aliases.get(v.model, {})} for v in versions]
        if as_json:
            for row in rows:
                row.pop("summary", None)
            render.print_json(rows)
            return
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for header in ("model", "latest", "files", "size", "registered", "run", "aliases"):
            table.add_column(header)
        for row in rows:
            table.add_row(
                row["model"],
                f"v{row['version']}",
                str(row["files"]),
                _size(row["size"]),
                render.when(row["created_at"]),
                (row["run"] or "-")[:12],
                ", ".join(f"{a}=v{n}" for a, n in row["aliases"].items()),
            )
        render.console().print(
            table if rows else "no models; register one with `lockstep models register`"
        )

    @models.command("show")
    @click.argument("ref")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def models_show(obj: Any, ref: str, as_json: bool) -> None:
        """A model version (NAME, NAME@vN, NAME@ALIAS): files, summaries, run, aliases."""
        registry = _registry(obj)
        version = registry.records.resolve(ref)
        files = registry.files(version)
        doc = {
            **version.to_json(),
            "file_list": [
                {"path": f.path, "digest": f.digest, "size": f.size, "mode": f.mode} for f in files
            ],
            "used_by": [
                {"run": r, "role": role} for r, role in registry.records.runs_of(version.id)
            ],
        }
        if as_json:
            render.print_json(doc)
            return
        out = render.console()
        aliases = f"  [{', '.join(version.aliases)}]" if version.aliases else ""
        out.print(f"[bold]{version.ref}[/]{aliases}  {render.when(version.created_at)}")
        if version.message:
            out.print(f"  {version.message}")
        out.print(
            f"  run {version.run_id or '-'}  by {version.created_by}  "
            f"manifest {version.manifest_digest[:16]}"
        )
        for path, summary in version.summary.get("files", {}).items():
            out.print("  " + _file_line(path, summary), markup=False, highlight=False)
        for flag in _flags(version):
            out.print(f"  [yellow]warning:[/] {flag}")
        for key, value in version.tags.items():
            out.print(f"  tag {key}={value}")
        for use in doc["used_by"]:
            out.print(f"  {use['role']} of run {use['run']}")

    @models.command("log")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def models_log(obj: Any, name: str, as_json: bool) -> None:
        """Versions of model NAME, newest first, and every move of its aliases."""
        registry = _registry(obj)
        versions = registry.records.versions(name)
        history = registry.records.alias_history(name)
        if as_json:
            render.print_json(
                {
                    "versions": [
                        {k: v for k, v in version.to_json().items() if k != "summary"}
                        for version in reversed(versions)
                    ],
                    "alias_history": [m.to_json() for m in history],
                }
            )
            return
        out = render.console()
        for version in reversed(versions):
            aliases = f" [{', '.join(version.aliases)}]" if version.aliases else ""
            out.print(
                f"[bold]v{version.number}[/]{aliases}  {render.when(version.created_at)}  "
                f"{version.file_count} files, {_size(version.size)}  run "
                f"{(version.run_id or '-')[:12]}  {version.message}"
            )
        if history:
            out.print("[bold]alias moves[/]")
        for move in history:
            before = f"v{move.from_number}" if move.from_number else "(new)"
            after = f"v{move.to_number}" if move.to_number else "(deleted)"
            out.print(
                f"  {render.when(move.at)}  {move.alias}: {before} -> {after}  "
                f"by {move.user}@{move.host}"
            )

    @models.command("diff")
    @click.argument("ref_a")
    @click.argument("ref_b")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @pass_context
    def models_diff(obj: Any, ref_a: str, ref_b: str, as_json: bool) -> None:
        """Files, tensor shapes and dtypes, and producing runs that differ between versions."""
        registry = _registry(obj)
        found = registry.diff(registry.records.resolve(ref_a), registry.records.resolve(ref_b))
        if as_json:
            render.print_json(found)
            return
        out = render.console()
        out.print(f"[bold]{found['a']}[/] -> [bold]{found['b']}[/]")
        files = found["files"]
        if not any(files.values()):
            out.print("files: identical")
        for kind in ("added", "removed", "modified"):
            for item in files.get(kind, []):
                out.print(f"  {kind:9s} {item['path']}")
        for change in found["tensors"][:50]:
            out.print(
                f"  tensor {change['file']}:{change['tensor']}  {change['a']} -> {change['b']}",
                markup=False,
            )
        if len(found["tensors"]) > 50:
            out.print(f"  ... {len(found['tensors']) - 50} more tensors (see --json)")
        runs = found["runs"]
        if "note" in runs:
            out.print(f"runs: {runs['note']}")
        elif "same_run" in runs:
            out.print("runs: both from the same run")
        else:
            dimensions = runs.get("dimensions", [])
            out.print(
                "runs differ in: "
                + (", ".join(dimensions) if dimensions else "nothing recorded")
                + f"  (lockstep diff {runs['a'][:12]} {runs['b'][:12]})"
            )

    @models.command("get")
    @click.argument("ref")
    @click.option(
        "--to",
        type=click.Path(file_okay=False, path_type=Path),
        help="Write the files here (default: ./NAME-vN).",
    )
    @click.option("--verify", is_flag=True, help="Re-hash every object before using it.")
    @click.option("--force", is_flag=True, help="Replace files there with other content.")
    @pass_context
    def models_get(obj: Any, ref: str, to: Path | None, verify: bool, force: bool) -> None:
        """Write the files of model version REF into a folder."""
        registry = _registry(obj)
        version = registry.records.resolve(ref)
        target = to or Path(f"{version.model}-v{version.number}")
        done = registry.materialise(version, target, verify=verify, force=force)
        how = ", ".join(done["links"]) or "nothing new"
        click.echo(
            f"{version.ref} -> {done['target']}: {done['written']} written, "
            f"{done['unchanged']} already there ({how})"
        )

    @models.command("tag")
    @click.argument("ref")
    @click.argument("assignments", nargs=-1, required=True)
    @pass_context
    def models_tag(obj: Any, ref: str, assignments: tuple[str, ...]) -> None:
        """Set KEY=VALUE tags on model version REF."""
        registry = _registry(obj)
        version = registry.records.resolve(ref)
        for assignment in assignments:
            key, value = registry.tag(version, assignment)
            click.echo(f"{version.ref}: {key}={value}")

    @models.command("rm")
    @click.argument("ref")
    @pass_context
    def models_rm(obj: Any, ref: str) -> None:
        """Remove model version REF (`lockstep gc` then frees what nothing else needs)."""
        registry = _registry(obj)
        version = registry.records.resolve(ref)
        registry.remove(version)
        click.echo(f"removed {version.ref}; run `lockstep gc` to free its objects")

    @models.command("alias")
    @click.argument("ref")
    @click.argument("alias")
    @click.option("--delete", is_flag=True, help="Remove the alias (REF is the model's name).")
    @click.option(
        "--require",
        type=click.Choice(["none", "reproduced", "within-noise"]),
        help="Refuse unless the version's run reproduced (default: [models] require).",
    )
    @click.option("-m", "--message", default="", help="Why, kept in the alias's history.")
    @pass_context
    def models_alias(
        obj: Any, ref: str, alias: str, delete: bool, require: str | None, message: str
    ) -> None:
        """Point ALIAS (production, staging, ...) at model version REF; every move is kept."""
        registry = _registry(obj)
        if delete:
            move = registry.delete_alias(ref.partition("@")[0], alias)
            click.echo(f"deleted {move.model}@{alias} (was v{move.from_number})")
            return
        version = registry.records.resolve(ref)
        move = registry.move_alias(version, alias, require=require, note=message)
        before = f" (was v{move.from_number})" if move.from_number else ""
        click.echo(f"{version.model}@{alias} -> v{version.number}{before}")

    @cli.command("lineage")
    @click.argument("ref")
    @click.option("--downstream", is_flag=True, help="What was built on REF (default: upstream).")
    @click.option("--depth", type=int, help="Follow at most this many links.")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "dot", "mermaid"]),
        default="text",
        help="text (a tree), dot (Graphviz) or mermaid.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (nodes and edges).")
    @pass_context
    def lineage_command(
        obj: Any, ref: str, downstream: bool, depth: int | None, fmt: str, as_json: bool
    ) -> None:
        """Trace REF (a run, NAME@vN of a model or dataset, or a file) up to what made it,
        or down to everything built on it."""
        from lockstep.cli import render_lineage
        from lockstep.models.lineage import lineage

        graph = lineage(obj.workspace(), ref, downstream=downstream, depth=depth)
        if as_json:
            render.print_json(graph.to_json())
        elif fmt == "dot":
            click.echo(render_lineage.dot(graph))
        elif fmt == "mermaid":
            click.echo(render_lineage.mermaid(graph))
        else:
            render_lineage.tree(graph)

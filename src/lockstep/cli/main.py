"""The ``lockstep`` command: parse, call the workspace, render; errors become exit codes here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lockstep import __version__
from lockstep.cli import render
from lockstep.errors import UsageError

if TYPE_CHECKING:
    from lockstep.core.records import RunRecord
    from lockstep.workspace import Workspace

EXIT_FAILURE = 1
EXIT_USAGE = 2


class Context:
    """What every command needs: the settings and, on demand, the opened workspace."""

    def __init__(self, debug: bool) -> None:
        from lockstep.settings import Settings

        self.debug = debug
        self.settings = Settings.from_env()
        self._workspace: Workspace | None = None

    def record(self, ref: str) -> RunRecord:
        """The stored run a reference names (id, prefix, name or `last`)."""
        meta = self.workspace().meta
        return meta.get_run(meta.resolve(ref))

    def workspace(self, *, create: bool = False) -> Workspace:
        """The store, opened once (created first when create), with dead runs reaped."""
        if self._workspace is None:
            from lockstep.tracking import liveness
            from lockstep.workspace import Workspace

            self._workspace = Workspace.open(self.settings, create=create)
            liveness.reap_dead_runs(
                self._workspace.meta, grace=self._workspace.settings.heartbeat_grace
            )
        return self._workspace


pass_context = click.make_pass_decorator(Context)

output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)


def emit(text: str, output: Path | None) -> None:
    """A document to standard output, or to a file (saying where)."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        if not output.parent.is_dir():
            raise UsageError(f"cannot write {output}: {output.parent} is not a directory")
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}") from None
        click.echo(f"wrote {output}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(__version__, prog_name="lockstep")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Lockstep: reproducible machine-learning runs.

    Runs are addressed by full id, a unique id prefix (4+ characters), a unique
    name, or `last`.
    """
    ctx.obj = Context(debug)


@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_context
def init(obj: Context, path: Path | None) -> None:
    """Create a lockstep store (.lockstep/) in PATH (default: here, or $LOCKSTEP_HOME)."""
    from lockstep.settings import STORE_DIRNAME
    from lockstep.workspace import Workspace, init_store_dir

    settings = obj.settings
    if path is not None:
        from dataclasses import replace

        settings = replace(settings, cwd=path.resolve(), home=None)
        path.mkdir(parents=True, exist_ok=True)
    store_dir = settings.home or settings.cwd / STORE_DIRNAME
    created = init_store_dir(store_dir)
    workspace = Workspace.open(replace_home(settings, store_dir))
    where = workspace.meta.location
    workspace.close()
    verb = "created" if created else "already initialised:"
    click.echo(f"{verb} {store_dir} (metadata: {where})")


def replace_home(settings: Any, store_dir: Path) -> Any:
    from dataclasses import replace

    return replace(settings, home=store_dir)


@cli.command("runs")
@click.option("-e", "--experiment", help="Only runs of this experiment.")
@click.option(
    "-f",
    "--filter",
    "filter_",
    default="",
    metavar="EXPR",
    help='e.g. "params.lr > 0.01 and metrics.acc >= 0.9".',
)
@click.option(
    "-s",
    "--sort",
    default="",
    metavar="KEYS",
    help="e.g. -metrics.acc,params.lr (- for descending). Default: newest first.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0, max=2**31),
    default=20,
    show_default=True,
    help="At most this many runs.",
)
@click.option("--all", "show_all", is_flag=True, help="Every matching run (no limit).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def runs_command(
    obj: Context,
    experiment: str | None,
    filter_: str,
    sort: str,
    limit: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """List runs, newest first, with a filter and a sort."""
    from lockstep.cli import render
    from lockstep.core.query import parse_filter, parse_sort

    where, order = parse_filter(filter_), parse_sort(sort)
    meta = obj.workspace().meta
    records = meta.search(
        experiment=experiment, where=where, sort=order, limit=None if show_all else limit
    )
    if as_json:
        render.print_json([r.to_json() for r in records])
        return
    total = len(records) if show_all else meta.count(experiment=experiment, where=where)
    render.run_table(records, total)


@cli.command()
@click.argument("run")
@click.option(
    "--code",
    is_flag=True,
    help="Print the recorded code instead: commit, uncommitted diff, untracked files.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def show(obj: Context, run: str, code: bool, as_json: bool) -> None:
    """Show everything recorded about RUN (with --code, its code as recorded)."""
    from lockstep.cli import render

    record = obj.record(run)
    if code:
        _show_code(obj, record, as_json)
        return
    models = _model_links(obj, record.id)
    if as_json:
        render.print_json({**record.to_json(), "models": models})
    else:
        render.run_detail(record)
        for link in models:
            render.console().print(f"model {link['ref']}: {link['role']}")


def _model_links(obj: Context, run_id: str) -> list[dict[str, Any]]:
    """The model versions a run read and those registered from it."""
    workspace = obj.workspace()
    records = workspace.model_records()
    links = [
        {"ref": f"{name}@v{number}", "role": role}
        for name, number, role in records.run_links(run_id)
    ]
    registered = records.versions_by_ids(
        v for _, v in workspace.lineage_queries().models_of_runs([run_id])
    )
    links += [{"ref": v.ref, "role": "registered"} for v in registered]
    return links


def _show_code(obj: Context, record: Any, as_json: bool) -> None:
    """The commit, the recorded diff as text and the untracked (or source) files."""
    section = record.sections.get("code")
    if not isinstance(section, dict) or "kind" not in section:
        raise UsageError(f"run {record.name} has no recorded code")
    diff = ""
    if section.get("diff"):
        diff = (
            obj.workspace()
            .objects.read_bytes(section["diff"]["digest"])
            .decode("utf-8", errors="replace")
        )
    files = [
        {"path": f["path"], "size": f.get("size"), "digest": f.get("digest")}
        for f in section.get("files", [])
    ]
    if as_json:
        render.print_json(
            {
                "kind": section["kind"],
                "commit": section.get("commit"),
                "branch": section.get("branch"),
                "diff": diff,
                "files": files,
            }
        )
        return
    label = "untracked" if section["kind"] == "git" else "source files"
    click.echo(f"commit {section.get('commit') or '(none: outside git)'}")
    click.echo(f"{label}: " + (", ".join(f["path"] for f in files) if files else "none"))
    click.echo(diff if diff else "no uncommitted changes", nl=not diff.endswith("\n"))


@cli.command()
@click.argument("run")
@click.argument("key")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1, max=2**31),
    default=10,
    show_default=True,
    help="Show the first and last N points of a long series.",
)
@click.option("--all", "show_all", is_flag=True, help="Show every point.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every point).")
@pass_context
def metrics(obj: Context, run: str, key: str, limit: int, show_all: bool, as_json: bool) -> None:
    """Print the series of metric KEY of RUN."""
    from lockstep.cli import render
    from lockstep.errors import UsageError
    from lockstep.tracking.history import MetricHistory

    meta = obj.workspace().meta
    run_id = meta.resolve(run)
    history = MetricHistory.from_chunks(key, meta.metric_chunks(run_id, key))
    if len(history) == 0:
        known = ", ".join(meta.get_run(run_id).metrics) or "none"
        raise UsageError(f"run {run} has no metric {key!r}; its metrics: {known}")
    if as_json:
        render.print_json(history.to_json())
    else:
        render.metric_series(history, None if show_all else limit)


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@pass_context
def rm(obj: Context, runs: tuple[str, ...]) -> None:
    """Delete RUNS and everything recorded with them."""
    meta = obj.workspace().meta
    resolved = [(ref, meta.resolve(ref)) for ref in runs]  # all or nothing
    for _, run_id in resolved:
        record = meta.get_run(run_id)
        made = [link["ref"] for link in _model_links(obj, run_id) if link["role"] == "registered"]
        meta.delete_run(run_id)
        click.echo(f"deleted {record.name} ({run_id})")
        if made:
            click.echo(
                f"warning: {', '.join(made)} came from this run; their lineage now shows it "
                "as a missing link (the versions and their files stay)",
                err=True,
            )


@cli.command()
@click.argument("run")
@click.argument("text")
@pass_context
def note(obj: Context, run: str, text: str) -> None:
    """Set the free-text note of RUN."""
    meta = obj.workspace().meta
    meta.set_note(meta.resolve(run), text)


@cli.command()
@click.argument("run")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--delete", is_flag=True, help="Remove the named tags instead (give KEY only).")
@pass_context
def tag(obj: Context, run: str, assignments: tuple[str, ...], delete: bool) -> None:
    """Set (or --delete) tags of RUN."""
    from lockstep.errors import UsageError

    meta = obj.workspace().meta
    run_id = meta.resolve(run)
    if delete:
        for key in assignments:
            meta.delete_tag(run_id, key)
        return
    tags = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"tag {text!r} must look like key=value")
        tags[key] = value
    meta.set_tags(run_id, tags)


@cli.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--name", help="Name of the run (default: a generated one).")
@click.option("-e", "--experiment", help="Experiment to file the run under (default: default).")
@click.option("--seed", type=int, help="Seed for every RNG (default: drawn and recorded).")
@click.option(
    "--deterministic",
    is_flag=True,
    help="Also turn on framework determinism (torch, cuDNN, cuBLAS, TF).",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Record a parameter (value read as JSON when it parses).",
)
@click.option("-t", "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Set a tag.")
@click.option("--note", default="", help="A free-text note for the run.")
@click.option(
    "--metrics-from-output",
    "metrics_from_output",
    flag_value=True,
    default=None,
    help="Read metrics from what the command prints (step 10: loss 0.5, loss=0.5 ...); "
    "also [capture] metrics_from_output = true.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_context
def run_command(
    obj: Context,
    name: str | None,
    experiment: str | None,
    seed: int | None,
    deterministic: bool,
    params: tuple[str, ...],
    tags: tuple[str, ...],
    note: str,
    metrics_from_output: bool | None,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND (after --) as a recorded run: code, data, seeds, environment, hardware.

    Exits with the command's own exit code.
    """
    import os

    from lockstep.core.params import parse_assignment
    from lockstep.tracking.launcher import LaunchRequest, launch

    if command and command[0] == "--":
        command = command[1:]
    parsed = dict(parse_assignment(p) for p in params)
    tag_values = {}
    for text in tags:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"tag {text!r} must look like key=value")
        tag_values[key] = value
    request = LaunchRequest(
        argv=command,
        name=name,
        experiment=experiment,
        seed=seed,
        deterministic=deterministic,
        params=parsed,
        tags=tag_values,
        note=note,
        metrics_from_output=metrics_from_output,
    )
    # The launcher opens the store itself, once the command is running.
    result = launch(
        obj.settings,
        request,
        environ=os.environ,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
    )
    click.echo(
        f"lockstep: run {result.name} ({result.run_id[:12]}) {result.status}, "
        f"exit code {result.exit_code}",
        err=True,
    )
    return result.exit_code


def _tolerances(items: tuple[str, ...]) -> dict[str, float]:
    per_key = {}
    for text in items:
        key, sep, value = text.partition("=")
        try:
            per_key[key] = float(value)
        except ValueError:
            raise UsageError(f"--tol {text!r} must look like KEY=RTOL, e.g. loss=1e-4") from None
        if not sep or not key:
            raise UsageError(f"--tol {text!r} must look like KEY=RTOL, e.g. loss=1e-4")
    return per_key


def _notify(message: str) -> None:
    click.echo(f"lockstep: {message}", err=True)


yes_option = click.option(
    "--yes",
    is_flag=True,
    help="Run the command of a run recorded on another host without asking.",
)


def confirm_foreign(record: Any, yes: bool) -> None:
    """A run recorded on another host (pulled from a remote) runs its command here only once
    the user has seen it: asked on a terminal, else --yes is needed."""
    import shlex
    import socket

    if yes or record.host == socket.gethostname():
        return
    argv = record.sections.get("command", {}).get("argv") or []
    command = shlex.join(str(a) for a in argv)
    where = f"run {record.name} was recorded on host {record.host}"
    if sys.stdin.isatty():
        click.echo(f"{where}; rerunning it runs this command here:\n  {command}", err=True)
        if click.confirm("Run it?", default=False, err=True):
            return
        raise click.exceptions.Abort()
    raise UsageError(
        f"{where}; rerunning it runs `{command[:200]}` here: check it, then pass --yes"
    )


@cli.command()
@click.argument("run")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Rebuild the run here (new or empty; default: a temporary directory).",
)
@click.option(
    "--env",
    "env_mode",
    type=click.Choice(["current", "recreate"]),
    default="current",
    show_default=True,
    help="current: this environment, differences reported; recreate: a new virtual "
    "environment with the recorded Python and pinned packages.",
)
@click.option("--keep", is_flag=True, help="Keep the rebuilt directory afterwards.")
@click.option("--name", help="Name of the new run.")
@yes_option
@pass_context
def rerun(
    obj: Context,
    run: str,
    workdir: Path | None,
    env_mode: str,
    keep: bool,
    name: str | None,
    yes: bool,
) -> int:
    """Rerun RUN from its record: same code, data, seed, settings; a new linked run."""
    import os

    from lockstep.reproduce.rerun import RerunOptions
    from lockstep.reproduce.rerun import rerun as rerun_run

    workspace = obj.workspace()
    record = workspace.meta.get_run(workspace.meta.resolve(run))
    confirm_foreign(record, yes)
    result = rerun_run(
        workspace,
        record,
        options=RerunOptions(workdir=workdir, keep=keep, name=name, env=env_mode),
        environ=os.environ,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
        notify=_notify,
    )
    _notify(
        f"rerun of {record.name}: run {result.name} ({result.run_id[:12]}) {result.status}, "
        f"exit code {result.exit_code}" + (f", kept in {workdir}" if keep and workdir else "")
    )
    return result.exit_code


@cli.command()
@click.argument("run")
@click.option("--against", help="Compare with this existing run instead of rerunning.")
@click.option("--rtol", type=float, help="Relative tolerance (default 1e-6 or pyproject).")
@click.option("--atol", type=float, help="Absolute tolerance (default 0 or pyproject).")
@click.option(
    "--tol",
    "tols",
    multiple=True,
    metavar="KEY=RTOL",
    help="Relative tolerance for one metric or output path.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=0),
    default=0,
    help="Also rerun with K other seeds to measure seed-to-seed noise.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@yes_option
@pass_context
def verify(
    obj: Context,
    run: str,
    against: str | None,
    rtol: float | None,
    atol: float | None,
    tols: tuple[str, ...],
    seeds: int,
    as_json: bool,
    yes: bool,
) -> int:
    """Judge whether RUN reproduces: IDENTICAL, REPRODUCED, NOT_REPRODUCED (exit 1) or
    UNVERIFIABLE (exit 3: nothing to compare)."""
    import os

    from lockstep.cli import render_reproduce
    from lockstep.reproduce.verify import load_tolerance
    from lockstep.reproduce.verify import verify as verify_run

    workspace = obj.workspace()
    record = obj.record(run)
    other = obj.record(against) if against else None
    tolerance = load_tolerance(workspace.project_root, rtol, atol, _tolerances(tols))
    if other is None or seeds:
        confirm_foreign(record, yes)
    # With --json, the rerun's own output goes to stderr so stdout stays one JSON document.
    result = verify_run(
        workspace,
        record,
        against=other,
        tolerance=tolerance,
        seeds=seeds,
        environ=os.environ,
        stdout=sys.stderr.buffer if as_json else sys.stdout.buffer,
        stderr=sys.stderr.buffer,
        notify=_notify,
    )
    if as_json:
        render.print_json(result.to_json())
    else:
        render_reproduce.verification(result)
    return verdict_exit_code(result.comparison.verdict)


EXIT_UNVERIFIABLE = 3


def verdict_exit_code(verdict: Any) -> int:
    """0 IDENTICAL/REPRODUCED, 1 NOT_REPRODUCED, 3 UNVERIFIABLE (2 stays for usage errors)."""
    from lockstep.reproduce.compare import Verdict

    if verdict is Verdict.NOT_REPRODUCED:
        return 1
    if verdict is Verdict.UNVERIFIABLE:
        return EXIT_UNVERIFIABLE
    return 0


@cli.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one key per dimension).")
@click.option(
    "--tensors",
    is_flag=True,
    help="Compare the runs' tensor fingerprints (runs recorded by `lockstep audit`).",
)
@pass_context
def diff_command(obj: Context, run_a: str, run_b: str, as_json: bool, tensors: bool) -> int:
    """Show how two runs differ: params, code, data, environment, hardware, seeds, results."""
    if tensors:
        return _diff_tensors(obj, run_a, run_b, as_json)
    from lockstep.cli import render_reproduce
    from lockstep.reproduce.diff import diff_runs
    from lockstep.tracking.history import history_reader

    workspace = obj.workspace()
    meta = workspace.meta
    a, b = obj.record(run_a), obj.record(run_b)
    differences = diff_runs(
        a,
        b,
        objects=workspace.objects,
        history=history_reader(meta),
    )
    if as_json:
        render.print_json(differences)
    else:
        render_reproduce.run_diff((a.name, b.name), differences)
    return 0


def _diff_tensors(obj: Context, run_a: str, run_b: str, as_json: bool) -> int:
    from lockstep.cli import render_reproduce
    from lockstep.determinism.divergence import first_divergence

    a, b = obj.record(run_a), obj.record(run_b)
    first, second = (r.sections.get("tensor_fingerprints") for r in (a, b))
    if not first or not second:
        raise UsageError("both runs need tensor fingerprints; record them with `lockstep audit`")
    divergence = first_divergence(first, second, a.sections.get("determinism"))
    if as_json:
        render.print_json(
            {
                "diverged": divergence is not None,
                "divergence": divergence.to_json() if divergence else None,
            }
        )
    else:
        render_reproduce.divergence(divergence, len(first["steps"]))
    return 1 if divergence else 0


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--rtol", type=float, help="Relative tolerance for 'same result'.")
@click.option("--atol", type=float, help="Absolute tolerance for 'same result'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@yes_option
@pass_context
def explain(
    obj: Context,
    run_a: str,
    run_b: str,
    rtol: float | None,
    atol: float | None,
    as_json: bool,
    yes: bool,
) -> None:
    """Find which factor (code, data, params, seed, env) makes two runs' results differ."""
    import os

    from lockstep.cli import render_reproduce
    from lockstep.reproduce.explain import explain as explain_runs
    from lockstep.reproduce.verify import load_tolerance

    workspace = obj.workspace()
    a, b = obj.record(run_a), obj.record(run_b)
    tolerance = load_tolerance(workspace.project_root, rtol, atol, {})
    confirm_foreign(a, yes)
    confirm_foreign(b, yes)
    result = explain_runs(
        workspace,
        a,
        b,
        tolerance=tolerance,
        environ=os.environ,
        stdout=sys.stderr.buffer,
        stderr=sys.stderr.buffer,
        notify=_notify,
    )
    if as_json:
        render.print_json(result.to_json())
    else:
        render_reproduce.explanation(result, (a.name, b.name))


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Watch this many optimizer steps.",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Record every K-th step only (cheaper on long runs).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="cpu hides GPUs from the command.",
)
@click.option("--deterministic", is_flag=True, help="Turn on framework determinism too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_context
def audit(
    obj: Context,
    steps: int,
    every: int,
    device: str,
    deterministic: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND twice with the same seed; name the first tensor where they diverge.

    Exits 1 when they diverge, 0 when every watched step matches bit for bit.
    """
    import os

    from lockstep.cli import render_reproduce
    from lockstep.determinism.audit import audit as run_audit

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError(
            "give the command to audit after --, e.g. lockstep audit -- python train.py"
        )
    result = run_audit(
        obj.settings,
        command,
        steps=steps,
        every=every,
        device=device,
        deterministic=deterministic,
        environ=os.environ,
        stdout=sys.stderr.buffer,
        stderr=sys.stderr.buffer,
    )
    if as_json:
        render.print_json(result.to_json())
    else:
        render_reproduce.divergence(result.divergence, result.steps_watched)
    return 1 if result.divergence else 0


@cli.command()
@click.argument("run")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html"]),
    default="md",
    show_default=True,
    help="Markdown or a standalone HTML page.",
)
@output_option
@pass_context
def report(obj: Context, run: str, fmt: str, output: Path | None) -> None:
    """A self-contained reproducibility report of RUN."""
    from lockstep.reproduce.report import html_report, markdown

    record = obj.record(run)
    objects = obj.workspace().objects
    emit(markdown(record, objects) if fmt == "md" else html_report(record, objects), output)


@cli.group()
def env() -> None:
    """The recorded software environment of runs."""


@env.command("export")
@click.argument("run")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["requirements", "dockerfile"]),
    default="requirements",
    show_default=True,
    help="What to write.",
)
@output_option
@pass_context
def env_export(obj: Context, run: str, fmt: str, output: Path | None) -> None:
    """Export RUN's environment as pinned requirements or a Dockerfile that rebuilds it."""
    from lockstep.reproduce.environment import dockerfile, requirements_txt

    record = obj.record(run)
    emit(requirements_txt(record) if fmt == "requirements" else dockerfile(record), output)


@cli.command()
@pass_context
def migrate(obj: Context) -> None:
    """Upgrade the store's schema to this lockstep's (back it up first)."""
    from lockstep.meta import migrate as migrations
    from lockstep.meta.engine import create_engine
    from lockstep.workspace import find_store_dir, metadata_url

    settings = obj.settings
    store_dir = find_store_dir(settings)
    if store_dir is None:
        from lockstep.errors import StoreNotFound

        raise StoreNotFound(str(settings.cwd / ".lockstep"))
    engine = create_engine(metadata_url(settings.with_config(store_dir), store_dir))
    before, after = migrations.upgrade(engine)
    engine.dispose()
    if before == after:
        click.echo(f"schema {after} is current")
    else:
        click.echo(f"migrated schema {before or 'none'} -> {after}")


def _register_more() -> None:
    from lockstep.cli import data, models, remote, server

    data.register(cli, pass_context)
    models.register(cli, pass_context)
    remote.register(cli, pass_context)
    server.register(cli, pass_context)


_register_more()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    sys.exit(run_cli(argv))


def run_cli(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="lockstep", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILURE
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as exc:
        return _report(exc, debug)


def _report(exc: Exception, debug: bool) -> int:
    from lockstep.errors import (
        DatasetNotFound,
        LockstepError,
        ModelNotFound,
        ProjectNotFound,
        RunNotFound,
        TokenNotFound,
        UsageError,
    )

    if debug:
        import traceback

        traceback.print_exception(exc)
    not_found = (RunNotFound, DatasetNotFound, ModelNotFound, ProjectNotFound, TokenNotFound)
    if isinstance(exc, (UsageError, *not_found)):
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    if isinstance(exc, LockstepError):
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILURE
    click.echo(
        f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
        err=True,
    )
    return EXIT_FAILURE

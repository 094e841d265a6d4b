"""Rich rendering of runs, run lists and metric series for the terminal."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from lockstep.core.records import RunRecord
    from lockstep.tracking.history import MetricHistory

_STATUS_STYLE = {
    "running": "cyan",
    "finished": "green",
    "failed": "red",
    "killed": "yellow",
    "crashed": "magenta",
}


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        # Piped output has no width to respect; keep wide tables whole.
        out.width = max(out.width, 200)
    return out


def print_json(value: Any) -> None:
    """JSON on stdout, one document, valid (NaN and infinity spelled as strings)."""
    import sys

    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def number(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    return json.dumps(value) if not isinstance(value, str) else value


def status(text: str) -> str:
    return f"[{_STATUS_STYLE.get(text, 'white')}]{text}[/]"


def run_table(records: list[RunRecord], total: int) -> None:
    from rich.table import Table

    out = console()
    if not records:
        out.print("no runs match; start one with `lockstep run -- python train.py`")
        return
    param_keys = _informative_keys([r.params for r in records], 5)
    metric_keys = sorted({k for r in records for k in r.metrics})[:5]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("id", "name", "experiment", "status", "started", "took"):
        table.add_column(header, no_wrap=True)
    for key in param_keys:
        table.add_column(f"params.{key}", justify="right", style="blue")
    for key in metric_keys:
        table.add_column(f"metrics.{key}", justify="right", style="green")
    for r in records:
        table.add_row(
            r.id[:12],
            r.name,
            r.experiment,
            status(str(r.status)),
            when(r.start_time),
            duration(r.duration),
            *[number(r.params[k]) if k in r.params else "" for k in param_keys],
            *[number(r.metrics[k].last) if k in r.metrics else "" for k in metric_keys],
        )
    out.print(table)
    if total > len(records):
        out.print(f"[dim]{len(records)} of {total} runs; --limit N or --all for more[/]")


def _informative_keys(rows: list[dict[str, Any]], limit: int) -> list[str]:
    """Keys whose values differ between rows first (they explain the runs), then the rest."""
    keys = sorted({k for row in rows for k in row})
    varying = [k for k in keys if len({json.dumps(row.get(k), default=str) for row in rows}) > 1]
    return (varying + [k for k in keys if k not in varying])[:limit]


def run_detail(record: RunRecord) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{record.name}[/]  {record.id}")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("experiment", record.experiment)
    facts.add_row("status", status(str(record.status)))
    facts.add_row("started", when(record.start_time))
    facts.add_row("ended", when(record.end_time))
    facts.add_row("duration", duration(record.duration))
    facts.add_row("host", f"{record.host} (pid {record.pid})")
    if record.note:
        facts.add_row("note", record.note)
    out.print(facts)
    _section(out, "params", {k: number(v) for k, v in record.params.items()})
    if record.metrics:
        table = Table(title="metrics", title_justify="left", box=None, header_style="bold")
        for header in ("key", "last", "step", "min", "max", "points"):
            table.add_column(header, justify="right" if header != "key" else "left")
        for key, s in record.metrics.items():
            table.add_row(
                key, number(s.last), str(s.last_step), number(s.min), number(s.max), str(s.count)
            )
        out.print(table)
    _section(out, "tags", record.tags)
    for kind, title in (
        ("input", "inputs"),
        ("output", "outputs"),
        ("artifact", "artifacts"),
        ("model", "models"),
    ):
        chosen = [a for a in record.artifacts if a.kind == kind]
        if chosen:
            table = Table(title=title, title_justify="left", box=None, header_style="bold")
            for header in ("path", "size", "digest"):
                table.add_column(header)
            for a in chosen:
                table.add_row(a.path, _size(a.size), a.digest[:16])
            out.print(table)
    _capture_sections(out, record)
    if record.error:
        out.print("[bold red]error[/]")
        out.print(record.error.rstrip(), markup=False)


def _unavailable(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"unavailable"}:
        return f"[dim]unavailable: {value['unavailable']}[/]"
    return None


def _capture_sections(out: Console, record: RunRecord) -> None:
    """The captured facts of a `lockstep run`, readably; unknown sections as JSON."""
    sections = dict(record.sections)
    command = sections.pop("command", None)
    if command:
        facts = {
            "argv": " ".join(command.get("argv", [])),
            "cwd": command.get("cwd", ""),
            "exit code": str(command.get("exit_code")),
        }
        if command.get("peak_rss_bytes"):
            facts["peak memory"] = _size(int(command["peak_rss_bytes"]))
        if command.get("cpu_user_seconds") is not None:
            facts["cpu"] = (
                f"{command['cpu_user_seconds']:.1f}s user, "
                f"{command.get('cpu_system_seconds', 0):.1f}s system"
            )
        gpu = command.get("peak_gpu_memory_mib")
        facts["peak gpu memory"] = _unavailable(gpu) or f"{gpu} MiB"
        if command.get("error"):
            facts["error"] = command["error"]
        _section(out, "command", facts)
    seed = sections.pop("seed", None)
    if seed:
        libraries = seed.get("libraries", {})
        facts = {
            "seed": f"{seed.get('value')} ({seed.get('source', 'given')})",
            "PYTHONHASHSEED": str(seed.get("pythonhashseed")),
        }
        facts.update({f"seeded {k}": str(v) for k, v in libraries.items()})
        for call in seed.get("script_calls", []):
            facts[f"the script: {call.get('call')}"] = (
                f"{call.get('value')} at {call.get('where')} (overrides lockstep's seed)"
            )
        _section(out, "seed", facts)
    determinism = sections.pop("determinism", None)
    if determinism:
        facts = {"requested": str(determinism.get("requested", False))}
        for framework in ("torch", "tensorflow", "numpy"):
            for key, value in (determinism.get(framework) or {}).items():
                facts[f"{framework}.{key}"] = json.dumps(value, default=str)
        facts.update({k: v for k, v in (determinism.get("env") or {}).items() if v})
        _section(out, "determinism", facts)
    code = sections.pop("code", None)
    if code:
        facts = {"unavailable": _unavailable(code) or ""} if _unavailable(code) else {}
        if code.get("kind") == "git":
            facts = {
                "commit": str(code.get("commit")),
                "branch": str(code.get("branch")),
                "remote": str(code.get("remote") or "-"),
                "dirty": str(code.get("dirty")),
                "changed": ", ".join(code.get("changed", [])) or "-",
                "diff": _size(code["diff"]["size"]) if code.get("diff") else "-",
            }
        elif code.get("kind") == "files":
            facts = {"outside git": code.get("reason", "")}
        files = code.get("files", [])
        if files:
            label = "untracked" if code.get("kind") == "git" else "files"
            facts[label] = f"{len(files)} files, {_size(sum(f['size'] for f in files))}"
        if code.get("excluded_outputs"):
            facts["earlier outputs left out"] = ", ".join(code["excluded_outputs"])
        _section(out, "code", facts)
    environment = sections.pop("environment", None)
    if environment:
        interpreter = environment.get("interpreter", {})
        packages = environment.get("packages")
        facts = {
            "python": f"{interpreter.get('version')} ({interpreter.get('executable')})",
            "packages": _unavailable(packages) or f"{len(packages or [])} distributions",
            "lock files": ", ".join(f["path"] for f in environment.get("lock_files", [])) or "-",
        }
        if environment.get("conda_env"):
            facts["conda env"] = environment["conda_env"]
        facts.update(environment.get("variables", {}))
        _section(out, "environment", facts)
    hardware = sections.pop("hardware", None)
    if hardware:
        cpu = hardware.get("cpu", {})
        gpus = hardware.get("gpus")
        facts = {
            "system": f"{hardware.get('os')} {hardware.get('os_release')}, {hardware.get('libc')}",
            "cpu": _unavailable(cpu)
            or f"{cpu.get('model')} x{cpu.get('logical_cores')} "
            f"({', '.join(cpu.get('numeric_flags', []))})",
            "memory": _size(hardware["memory_bytes"])
            if isinstance(hardware.get("memory_bytes"), int)
            else str(hardware.get("memory_bytes")),
            "gpus": _unavailable(gpus)
            or "; ".join(
                f"{g['name']} {g.get('memory_mib')} MiB, driver {g.get('driver')}, "
                f"CUDA {g.get('cuda_driver_version')}"
                for g in gpus or []
            )
            or "none",
        }
        _section(out, "hardware", facts)
    history = sections.pop("verifications", None)
    if isinstance(history, list) and history:
        for kind, title in (("reproduction", "reproductions"), ("comparison", "comparisons")):
            entries = [v for v in history if v.get("kind", "reproduction") == kind]
            facts = {
                f"{number}. {when(float(v.get('time', 0)))}": (
                    f"{v.get('verdict')} "
                    + ("by rerun " if kind == "reproduction" else "against ")
                    + f"{v.get('against_name') or v.get('against')}"
                    + (f" ({', '.join(v['differences'][:5])})" if v.get("differences") else "")
                )
                for number, v in enumerate(entries, 1)
            }
            _section(out, title, facts)
    for name, value in sections.items():
        out.print(f"[bold]{name}[/]")
        out.print_json(json.dumps(value, default=str))


def _section(out: Console, title: str, values: dict[str, str]) -> None:
    from rich.table import Table

    if not values:
        return
    table = Table(title=title, title_justify="left", box=None, show_header=False)
    table.add_column(style="dim")
    table.add_column()
    for key, value in values.items():
        table.add_row(key, value)
    out.print(table)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def metric_series(history: MetricHistory, limit: int | None) -> None:
    from rich.table import Table

    out = console()
    count = len(history)
    if count == 0:
        out.print(f"no points for {history.key}")
        return
    table = Table(box=None, header_style="bold")
    for header in ("step", "value", "time"):
        table.add_column(header, justify="right")
    rows: list[int] | range = range(count)
    if limit is not None and count > 2 * limit:
        rows = [*range(limit), -1, *range(count - limit, count)]
    for i in rows:
        if i == -1:
            table.add_row("...", "...", "...")
            continue
        table.add_row(
            str(int(history.steps[i])),
            number(float(history.values[i])),
            when(float(history.times[i])),
        )
    out.print(table)
    out.print(f"[dim]{count} points[/]")

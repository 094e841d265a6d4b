"""``lockstep report``: a self-contained reproducibility report of one run (Markdown or HTML)."""

from __future__ import annotations

import html
import shlex
from datetime import datetime
from typing import Any

from lockstep.core.records import RunRecord
from lockstep.errors import LockstepError


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp).isoformat(" ", "seconds")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


def _verification_rows(entries: list[dict[str, Any]], label: str) -> list[str]:
    return _table(
        ["when", label, "verdict", "rtol", "differences"],
        [
            [
                _when(v["time"]),
                v.get("against_name", v["against"]),
                f"**{v['verdict']}**",
                v["rtol"],
                ", ".join(v.get("differences", [])) or "-",
            ]
            for v in entries
        ],
    )


def _code_diff_text(code: dict[str, Any], objects: Any) -> str:
    """The recorded uncommitted diff, as text (empty when there is none or it is binary)."""
    diff = code.get("diff")
    if objects is None or not isinstance(diff, dict) or not diff.get("digest"):
        return ""
    try:
        data: bytes = objects.read_bytes(diff["digest"])
    except (OSError, LockstepError):
        return "(the recorded diff is not in this store)"
    return data.decode("utf-8", errors="replace")


def markdown(record: RunRecord, objects: Any = None) -> str:
    sections = record.sections
    command = sections.get("command", {})
    code = sections.get("code", {})
    seed = sections.get("seed", {})
    determinism = sections.get("determinism", {})
    environment = sections.get("environment", {})
    hardware = sections.get("hardware", {})
    lines = [
        f"# Reproducibility report: {record.name}",
        "",
        f"Run `{record.id}`, experiment `{record.experiment}`, **{record.status}**, "
        f"{_when(record.start_time)} to {_when(record.end_time)}.",
        "",
        "## Reproduce it",
        "",
        "```",
        f"lockstep rerun {record.id}",
        f"lockstep verify {record.id}",
        "```",
        "",
    ]
    if command.get("argv"):
        lines += [
            f"Recorded command: `{shlex.join(command['argv'])}` in `{command.get('cwd')}`, "
            f"exit code {command.get('exit_code')}.",
            "",
        ]
    lines += ["## Code", ""]
    if code.get("kind") == "git":
        lines += [
            f"- commit `{code.get('commit')}` on `{code.get('branch')}` "
            f"({code.get('remote') or 'no remote'})",
            f"- uncommitted changes: {', '.join(code.get('changed', [])) or 'none'}",
            f"- untracked files: {len(code.get('files', []))}",
            "",
        ]
    elif code:
        lines += [f"- {len(code.get('files', []))} source files (outside git)", ""]
    lines += ["## Inputs", ""]
    lines += _table(
        ["path", "size", "blake3"],
        [[a.path, a.size, f"`{a.digest}`"] for a in record.inputs()],
    )
    lines += ["## Parameters", ""]
    lines += _table(["key", "value"], [[k, v] for k, v in record.params.items()])
    lines += [
        "## Seed and determinism",
        "",
        f"- seed {seed.get('value')} ({seed.get('source', 'given')}), "
        f"PYTHONHASHSEED {seed.get('pythonhashseed')}",
        f"- seeded: {', '.join(f'{k}={v}' for k, v in seed.get('libraries', {}).items())}",
    ]
    for call in seed.get("script_calls", []):
        lines.append(
            f"- the script seeds itself: `{call.get('call')}({call.get('value')})` at "
            f"`{call.get('where')}` (after lockstep's seed)"
        )
    lines += [
        f"- deterministic mode requested: {determinism.get('requested', False)}",
    ]
    torch_state = determinism.get("torch")
    if torch_state:
        lines.append("- torch: " + ", ".join(f"{k}={v}" for k, v in torch_state.items()))
    lines += ["", "## Environment", ""]
    interpreter = environment.get("interpreter", {})
    packages = environment.get("packages")
    lines += [
        f"- Python {interpreter.get('version')} ({interpreter.get('executable')})",
        f"- {len(packages) if isinstance(packages, list) else 0} packages; rebuild with "
        f"`lockstep env export {record.id} --format requirements` or `--format dockerfile`",
        "- lock files: "
        + (
            ", ".join(
                f"{f['path']} `{f['digest'][:16]}`" for f in environment.get("lock_files", [])
            )
            or "none"
        ),
    ]
    for key, value in environment.get("variables", {}).items():
        lines.append(f"- `{key}={value}`")
    cpu = hardware.get("cpu", {}) if isinstance(hardware.get("cpu"), dict) else {}
    gpus = hardware.get("gpus")
    lines += [
        "",
        "## Hardware",
        "",
        f"- {hardware.get('os')} {hardware.get('os_release')}, {hardware.get('libc')}",
        f"- CPU {cpu.get('model')} x{cpu.get('logical_cores')} "
        f"({', '.join(cpu.get('numeric_flags', []))})",
        "- GPUs: "
        + (
            "; ".join(f"{g.get('name')} (driver {g.get('driver')})" for g in gpus)
            if isinstance(gpus, list) and gpus
            else str((gpus or {}).get("unavailable", "none"))
        ),
        "",
    ]
    lines += ["## Metrics", ""]
    lines += _table(
        ["key", "last", "min", "max", "points"],
        [[k, s.last, s.min, s.max, s.count] for k, s in record.metrics.items()],
    )
    lines += ["## Outputs", ""]
    lines += _table(
        ["path", "size", "blake3"],
        [[a.path, a.size, f"`{a.digest}`"] for a in record.artifacts if a.kind != "input"],
    )
    history = sections.get("verifications", [])
    reproductions = [v for v in history if v.get("kind", "reproduction") == "reproduction"]
    comparisons = [v for v in history if v.get("kind") == "comparison"]
    lines += ["## Reproductions", "", "Reruns of this run from its record, judged against it.", ""]
    lines += _verification_rows(reproductions, "rerun")
    lines += [
        "## Comparisons with other runs",
        "",
        "`lockstep verify` with `--against`: how this run's result compares with another "
        "run's. Not a reproduction: a difference here is not a failure to reproduce.",
        "",
    ]
    lines += _verification_rows(comparisons, "against")
    diff = _code_diff_text(code, objects)
    if diff:
        lines += ["## Uncommitted changes", "", "```diff", diff.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def html_report(record: RunRecord, objects: Any = None) -> str:
    """The Markdown report rendered as a standalone HTML page (no external assets)."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    body: str = renderer.render(markdown(record, objects))
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "pre{background:#f4f4f4;padding:1em;overflow-x:auto}code{background:#f4f4f4}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(record.name)}"
        f"</title><style>{style}</style></head><body>\n" + body + "</body></html>\n"
    )

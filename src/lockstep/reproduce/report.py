"""``lockstep report``: a self-contained reproducibility report of one run (Markdown or HTML)."""

from __future__ import annotations

import html
import shlex
from datetime import datetime
from typing import Any

from lockstep.core.records import RunRecord


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp).isoformat(" ", "seconds")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


def markdown(record: RunRecord) -> str:
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
        [[a.path, a.size, f"`{a.digest}`"] for a in record.artifacts if a.kind == "input"],
    )
    lines += ["## Parameters", ""]
    lines += _table(["key", "value"], [[k, v] for k, v in record.params.items()])
    lines += [
        "## Seed and determinism",
        "",
        f"- seed {seed.get('value')} ({seed.get('source', 'given')}), "
        f"PYTHONHASHSEED {seed.get('pythonhashseed')}",
        f"- seeded: {', '.join(f'{k}={v}' for k, v in seed.get('libraries', {}).items())}",
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
    lines += ["## Verification history", ""]
    lines += _table(
        ["when", "against", "verdict", "rtol", "differences"],
        [
            [
                _when(v["time"]),
                v.get("against_name", v["against"]),
                f"**{v['verdict']}**",
                v["rtol"],
                ", ".join(v.get("differences", [])) or "-",
            ]
            for v in sections.get("verifications", [])
        ],
    )
    return "\n".join(lines)


def html_report(record: RunRecord) -> str:
    """The Markdown report as a standalone HTML page (no external assets)."""
    body: list[str] = []
    in_code = in_table = False
    for line in markdown(record).splitlines():
        if line.startswith("```"):
            body.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            body.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [
                html.escape(c.strip().replace("`", "").replace("**", ""))
                for c in line.strip("|").split(" | ")
            ]
            if set(line) <= {"|", "-"}:
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
                body.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        text = html.escape(line).replace("**", "")
        if line.startswith("# "):
            body.append(f"<h1>{text[2:]}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{text[3:]}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{text[2:]}</li>")
        elif text:
            body.append(f"<p>{text}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "pre{background:#f4f4f4;padding:1em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(record.name)}"
        f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )

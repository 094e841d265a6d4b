"""Rich rendering of verify verdicts, run diffs and explanations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from lockstep.cli.render import console, number

if TYPE_CHECKING:
    from lockstep.determinism.divergence import Divergence
    from lockstep.reproduce.explain import Explanation
    from lockstep.reproduce.verify import Verification

_VERDICT_STYLE = {
    "IDENTICAL": "bold green",
    "REPRODUCED": "bold green",
    "NOT_REPRODUCED": "bold red",
    "UNVERIFIABLE": "bold yellow",
}


def verification(result: Verification) -> None:
    from rich.table import Table

    out = console()
    comparison = result.comparison
    verdict = str(comparison.verdict)
    what = "reproduction of" if result.kind == "reproduction" else "comparison of"
    out.print(
        f"[{_VERDICT_STYLE[verdict]}]{verdict}[/]  {what} {result.run.name} with "
        f"{result.other.name} (rtol {comparison.tolerance.rtol:g}, "
        f"atol {comparison.tolerance.atol:g})",
        markup=True,
        highlight=False,
    )
    differences = comparison.differences()
    if differences:
        table = Table(box=None, header_style="bold")
        for header in (
            "what",
            "status",
            "A",
            "B",
            "max abs diff",
            "max rel diff",
            "first step",
            "detail",
        ):
            table.add_column(header)
        for f in differences:
            style = "red" if f.status == "differs" else "yellow"
            where = f.first_step if f.first_step is not None else f.first_line
            table.add_row(
                f"{f.kind} {f.name}",
                f"[{style}]{f.status}[/]",
                _cell(f.a),
                _cell(f.b),
                number(f.max_abs_diff) if f.max_abs_diff is not None else "",
                number(f.max_rel_diff) if f.max_rel_diff is not None else "",
                "" if where is None else (f"line {where}" if f.kind == "output" else str(where)),
                escape(f.detail),
            )
        out.print(table)
    same = [f for f in comparison.findings() if f.status == "identical" and f.kind != "status"]
    if same:
        out.print(f"[dim]bitwise identical: {escape(', '.join(f.name for f in same))}[/]")
    ignored = [f for f in same if "volatile" in f.detail]
    for f in ignored:
        out.print(f"[dim]{escape(f.name)}: {escape(f.detail)}[/]")
    for note in comparison.notes:
        out.print(f"[yellow]{escape(note)}[/]")
    if result.seed_noise is not None:
        for key, noise in result.seed_noise.items():
            within = "within" if noise["within_noise"] else "beyond"
            out.print(
                f"seed noise {escape(key)}: difference {noise['difference']:.3g} is {within} "
                f"2 x seed std {noise['seed_std']:.3g} ({noise['seeds']} seeds)"
            )
        for note in result.seed_notes:
            out.print(f"[yellow]seeds: {escape(note)}[/]")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return number(value) if isinstance(value, (int, float)) else escape(str(value))


def run_diff(names: tuple[str, str], differences: dict[str, Any]) -> None:
    out = console()
    if not differences:
        out.print(f"{names[0]} and {names[1]} do not differ")
        return
    for dimension, content in differences.items():
        out.print(f"[bold]{dimension}[/]")
        if dimension == "code" and isinstance(content, dict) and "diff" in content:
            for key in ("commits", "added", "removed", "modified", "binary"):
                if content.get(key):
                    out.print(f"  {key}: {json.dumps(content[key])}")
            from rich.syntax import Syntax

            out.print(
                Syntax(content["diff"], "diff", theme="ansi_dark", background_color="default")
            )
            continue
        _nested(out, content, "  ")


def _nested(out: Any, content: Any, indent: str) -> None:
    if isinstance(content, dict):
        if set(content) <= {"a", "b"} and content:
            out.print(
                f"{indent}[red]- {_short(content.get('a'))}[/]  "
                f"[green]+ {_short(content.get('b'))}[/]",
                markup=True,
            )
            return
        for key, value in content.items():
            if isinstance(value, dict) and set(value) <= {"a", "b"} and value:
                out.print(
                    f"{indent}{key}: [red]{_short(value.get('a'))}[/] -> "
                    f"[green]{_short(value.get('b'))}[/]"
                )
            elif isinstance(value, (dict, list)):
                out.print(f"{indent}{key}:")
                _nested(out, value, indent + "  ")
            else:
                out.print(f"{indent}{key}: {_short(value)}")
    elif isinstance(content, list):
        for item in content:
            out.print(f"{indent}- {_short(item)}")
    else:
        out.print(f"{indent}{_short(content)}")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def explanation(result: Explanation, names: tuple[str, str]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"A = {names[0]}, B = {names[1]}: {result.verdict}")
    if result.baseline:
        out.print(f"baseline: {result.baseline}")
    if result.factors:
        table = Table(box=None, header_style="bold")
        for header in ("factor", "A with B's factor gives", "what differs", "run"):
            table.add_column(header)
        for f in result.factors:
            style = (
                "bold red"
                if f.reproduces == "B"
                else "yellow"
                if f.reproduces == "neither"
                else "green"
            )
            table.add_row(
                f.factor,
                f"[{style}]{f.reproduces}[/]",
                f.description,
                f.run[:12] + (" (cached)" if f.cached else ""),
            )
        out.print(table)
    for note in result.not_swappable:
        out.print(f"[yellow]{note}[/]")
    out.print(f"[bold]{result.conclusion}[/]")


def divergence(found: Divergence | None, steps: int) -> None:
    out = console()
    if found is None:
        out.print(f"[bold green]no divergence[/]: {steps} watched steps match bit for bit")
        return
    where = "starts here" if found.origin else "inherited from unwatched code"
    out.print(
        f"[bold red]diverged[/] at step {found.step}, phase {found.phase}: "
        f"[bold]{found.name}[/] ({where})"
    )
    out.print(found.detail)
    for cause in found.causes:
        out.print(f"  - {cause}")

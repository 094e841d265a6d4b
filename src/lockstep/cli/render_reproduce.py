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


_MAX_DIFF_LINES = 400  # of a code diff in the text view; --json has all of it


def run_diff(names: tuple[str, str], differences: dict[str, Any]) -> None:
    out = console()
    if not differences:
        out.print(f"{names[0]} and {names[1]} do not differ")
        return
    for dimension, found in differences.items():
        out.print(f"[bold]{dimension}[/]")
        content = found
        if dimension == "params" and isinstance(found, dict) and "argv" in found:
            argv = found["argv"]
            out.print("  command:")
            for line in token_diff(argv.get("a") or [], argv.get("b") or []):
                out.print("    " + line, highlight=False)
            content = {k: v for k, v in found.items() if k != "argv"}
            if not content:
                continue
        if dimension == "code" and isinstance(content, dict):
            commits = content.get("commits")
            if commits:
                out.print(f"  commit: [red]{commits.get('a')}[/] -> [green]{commits.get('b')}[/]")
            for key in ("added", "removed", "modified", "binary", "unavailable"):
                if content.get(key):
                    out.print(f"  {key}: {escape(json.dumps(content[key]))}")
            if "diff" in content:
                from rich.syntax import Syntax

                lines = content["diff"].splitlines()
                shown = "\n".join(lines[:_MAX_DIFF_LINES])
                out.print(Syntax(shown, "diff", theme="ansi_dark", background_color="default"))
                if len(lines) > _MAX_DIFF_LINES:
                    out.print(
                        f"[dim]... {len(lines) - _MAX_DIFF_LINES} more lines "
                        "(`lockstep diff --json` has the whole diff)[/]"
                    )
            continue
        _nested(out, content, "  ")


def token_diff(a: list[str], b: list[str]) -> list[str]:
    """Two command lines as a word-level diff: '-' and '+' lines, changed words marked."""
    import difflib
    import shlex

    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        words_a = [escape(shlex.quote(w)) for w in a[i1:i2]]
        words_b = [escape(shlex.quote(w)) for w in b[j1:j2]]
        if op == "equal":
            left += words_a
            right += words_b
            continue
        left += [f"[bold red on grey19][{w}][/]" for w in words_a]
        right += [f"[bold green on grey19]{{+{w}+}}[/]" for w in words_b]
    return ["[red]-[/] " + " ".join(left), "[green]+[/] " + " ".join(right)]


def _nested(out: Any, content: Any, indent: str) -> None:
    if isinstance(content, dict):
        if set(content) <= {"a", "b"} and content:
            out.print(f"{indent}{_pair(content.get('a'), content.get('b'))}", markup=True)
            return
        for key, value in content.items():
            if isinstance(value, dict) and set(value) <= {"a", "b"} and value:
                out.print(f"{indent}{escape(str(key))}: {_pair(value.get('a'), value.get('b'))}")
            elif isinstance(value, (dict, list)):
                out.print(f"{indent}{escape(str(key))}:")
                _nested(out, value, indent + "  ")
            else:
                out.print(f"{indent}{escape(str(key))}: {escape(_short(value))}")
    elif isinstance(content, list):
        for item in content:
            out.print(f"{indent}- {escape(_short(item))}")
    else:
        out.print(f"{indent}{escape(_short(content))}")


def _pair(a: Any, b: Any) -> str:
    """A before/after pair; long values as a word-level diff, never cut where they differ."""
    text_a = a if isinstance(a, str) else json.dumps(a, default=str)
    text_b = b if isinstance(b, str) else json.dumps(b, default=str)
    if len(text_a) <= 120 and len(text_b) <= 120:
        return f"[red]{escape(text_a)}[/] -> [green]{escape(text_b)}[/]"
    words_a = a if isinstance(a, list) else text_a.split(" ")
    words_b = b if isinstance(b, list) else text_b.split(" ")
    lines = token_diff([str(w) for w in words_a], [str(w) for w in words_b])
    return "\n      ".join(["", *lines])


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


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

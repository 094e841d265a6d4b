"""Compare what two runs printed: line by line, volatile parts masked, numbers within tolerance.

A line is split into its text and its numbers. Two lines agree when their text
is the same after masking what changes from run to run by nature (timestamps,
durations, progress bars, memory addresses, temporary paths, the run's own id
and name) and each pair of numbers is within tolerance; ``acc 0.9312`` against
``acc 0.9313`` is within rtol 1e-3 and beyond 1e-6.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Each pattern is replaced by its placeholder before lines are compared. Order matters:
# whole timestamps before bare times, progress bars before the numbers inside them.
_BUILTIN_MASKS: tuple[tuple[str, str], ...] = (
    # tqdm-style bars and rates: " 45%|####      | 45/100 [00:01<00:02, 30.1it/s]"
    (r"\d+%\|[^|\n]*\|[^\n]*?(?:\]|$)", "<progress>"),
    (r"\[\d+:\d{2}(?::\d{2})?<[^\]]*\]", "<progress>"),
    (r"\d+(?:\.\d+)?\s?(?:it/s|s/it|samples/s|examples/s|tokens/s|steps/s|batches/s)", "<rate>"),
    # ISO and common log timestamps, then times of day and dates on their own.
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        "<timestamp>",
    ),
    (
        r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        r" +\d+ \d{2}:\d{2}:\d{2}(?: \d{4})?",
        "<timestamp>",
    ),
    (r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
    (r"\b\d{4}-\d{2}-\d{2}\b", "<date>"),
    # Durations: "took 1.23s", "12.5 ms", "3 sec", "elapsed: 4.2".
    (
        r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|min|mins|minutes?|h|hours?)\b",
        "<duration>",
    ),
    (r"(?i)\b(?:elapsed|took|time|duration)(\s*[:=]?\s*)\d+(?:\.\d+)?", r"<duration>"),
    # Memory addresses and object reprs.
    (r"\b0x[0-9a-fA-F]{6,}\b", "<address>"),
    # Process ids in the usual spellings.
    (r"(?i)\bpid[ =:]+\d+", "pid <pid>"),
)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)\b", re.I)
MAX_LINES = 200_000  # per stream; past this the remainder is compared as one block


@dataclass(frozen=True, kw_only=True)
class Masks:
    """What is volatile in one run's output: the built-in patterns plus that run's own names."""

    patterns: tuple[re.Pattern[str], ...]
    replacements: tuple[str, ...]
    literals: tuple[tuple[str, str], ...] = ()  # (text, placeholder): paths, ids, names

    @classmethod
    def build(cls, extra: Iterable[str] = (), literals: Iterable[tuple[str, str]] = ()) -> Masks:
        pairs = [(re.compile(p), r) for p, r in _BUILTIN_MASKS]
        pairs += [(re.compile(p), "<masked>") for p in extra]
        tmp = tempfile.gettempdir().rstrip("/")
        pairs.append((re.compile(re.escape(tmp) + r"/[^\s'\"():,]+"), "<tmp>"))
        ordered = sorted({t: r for t, r in literals if t}.items(), key=lambda x: -len(x[0]))
        return cls(
            patterns=tuple(p for p, _ in pairs),
            replacements=tuple(r for _, r in pairs),
            literals=tuple(ordered),
        )

    def apply(self, line: str) -> str:
        for text, placeholder in self.literals:
            if text in line:
                line = line.replace(text, placeholder)
        for pattern, replacement in zip(self.patterns, self.replacements, strict=True):
            line = pattern.sub(replacement, line)
        return line


def lines_of(data: bytes) -> list[str]:
    """The lines a terminal would show: carriage-return rewrites collapse to their last state."""
    text = data.decode("utf-8", errors="replace")
    out = []
    for raw in text.split("\n"):
        line = raw
        if "\r" in raw:
            parts = [p for p in raw.split("\r") if p]
            line = parts[-1] if parts else ""
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def _split(line: str) -> tuple[str, list[float]]:
    """The line's text with each number replaced by '#', and the numbers."""
    numbers: list[float] = []

    def take(match: re.Match[str]) -> str:
        numbers.append(float(match.group(0)))
        return "#"

    return _NUMBER.sub(take, line), numbers


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


@dataclass(frozen=True, kw_only=True)
class TextComparison:
    """How two printed streams compare."""

    status: str  # identical / within_tolerance / differs
    lines_a: int
    lines_b: int
    first_line: int | None = None  # 1-based, in the masked streams
    line_a: str = ""
    line_b: str = ""
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    masked: bool = False  # some volatile part was masked
    numbers: list[tuple[float, float]] = field(default_factory=list)  # differing number pairs


def compare_text(
    a: bytes, b: bytes, masks_a: Masks, masks_b: Masks, rtol: float, atol: float
) -> TextComparison:
    """Two printed outputs, line by line (see the module docstring)."""
    if a == b:
        count = len(lines_of(a))
        return TextComparison(status="identical", lines_a=count, lines_b=count)
    raw_a, raw_b = lines_of(a), lines_of(b)
    left = [masks_a.apply(line) for line in _cap(raw_a)]
    right = [masks_b.apply(line) for line in _cap(raw_b)]
    masked = left != _cap(raw_a) or right != _cap(raw_b)
    if left == right:
        return TextComparison(
            status="identical", lines_a=len(raw_a), lines_b=len(raw_b), masked=masked
        )
    worst_abs = worst_rel = 0.0
    first: int | None = None
    status = "within_tolerance"
    pairs: list[tuple[float, float]] = []
    for index in range(max(len(left), len(right))):
        x = left[index] if index < len(left) else None
        y = right[index] if index < len(right) else None
        if x == y:
            continue
        if first is None:
            first = index
        if x is None or y is None:
            status = "differs"
            break
        text_x, numbers_x = _split(x)
        text_y, numbers_y = _split(y)
        if text_x != text_y or len(numbers_x) != len(numbers_y):
            status, first = "differs", index
            break
        for p, q in zip(numbers_x, numbers_y, strict=True):
            if p == q or (math.isnan(p) and math.isnan(q)):
                continue
            pairs.append((p, q))
            diff = abs(p - q)
            worst_abs = max(worst_abs, diff)
            worst_rel = max(worst_rel, diff / abs(q) if q else math.inf)
            if not _close(p, q, rtol, atol):
                if status != "differs":
                    first = index
                status = "differs"
    assert first is not None
    return TextComparison(
        status=status,
        lines_a=len(raw_a),
        lines_b=len(raw_b),
        first_line=first + 1,
        line_a=left[first] if first < len(left) else "(no line)",
        line_b=right[first] if first < len(right) else "(no line)",
        max_abs_diff=worst_abs if pairs else None,
        max_rel_diff=worst_rel if pairs else None,
        masked=masked,
        numbers=pairs,
    )


def numbers_in(data: bytes, masks: Masks) -> tuple[tuple[str, ...], list[float]]:
    """The masked text skeleton of a whole output and its numbers in order (seed noise)."""
    skeleton: list[str] = []
    numbers: list[float] = []
    for line in _cap(lines_of(data)):
        text, found = _split(masks.apply(line))
        skeleton.append(text)
        numbers += found
    return tuple(skeleton), numbers


def _cap(lines: Sequence[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return list(lines)
    return [*lines[: MAX_LINES - 1], "\n".join(lines[MAX_LINES - 1 :])]

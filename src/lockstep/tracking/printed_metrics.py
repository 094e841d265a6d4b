"""Metrics read from what a command printed (``lockstep run --metrics-from-output``).

The default pattern takes lines like ``step 100: loss 2.31, lr 3e-4``,
``iter 10: loss 4.2000, time 12.3ms``, ``Epoch 3/10 - loss: 0.25 - accuracy: 0.91``,
``loss=0.5 acc=0.9``, ``| step 20 | loss 1.5 | ppl 4.48 |`` and Transformers'
``{'loss': 0.6931, 'learning_rate': 5e-05, 'epoch': 1.0}``:

- a step is a number after ``step``, ``iter``, ``iteration``, ``epoch`` or ``batch``
  (``3/10`` counts as 3); a line without one takes the next step of its keys;
- a key is a name, or two words joined by ``_`` (``train loss 2.1`` is
  ``train_loss``);
- a value is a plain number (``0.5``, ``-1e-3``, ``nan``) after a key (quoted or
  not, as a printed dict has it) and ``=`` or ``: ``, or, on a line with a step, after
  a key and a space; a number with a unit or
  more dots (``12.3ms``, ``45%``, ``2.13.0``) is not a value;
- progress bars, timestamps and durations are masked first (the masks ``verify`` uses
  for printed output), and a line without a step needs a ``key=value`` or
  ``key: value`` pair: ``Python 3.11.7`` or ``torch 2.13.0`` is never a metric.

A user pattern (``[capture] metrics_pattern``) is a regular expression with named
groups: ``step`` (optional) and either ``key`` and ``value``, or one group per metric
(``(?P<loss>...)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lockstep.errors import UsageError

_STEP = re.compile(
    r"(?i)(?<![\w.])(?:step|iter|iteration|epoch|batch)\s*[:=#]?\s*(\d+)(?:\s*/\s*\d+)?(?![\w.])"
)
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
# key, separator, value; the value must not run on into a unit, a version or a word.
_PAIR = re.compile(
    # a key may have one word before it: "train loss 2.1" is train_loss
    r"(?<![\w./-])['\"]?(?P<key>(?:[A-Za-z]+ )?[A-Za-z_][\w./-]{0,63}?)['\"]?"
    # "=" tight or spaced; ":" followed by a space ("cuda:0", "host:8080" are not metrics)
    r"(?P<sep>\s*=\s*|\s*:\s+|\s+)"
    r"(?P<value>" + _NUMBER + r")(?![\w.%/:])"
)
_STEP_WORDS = frozenset({"step", "iter", "iteration", "epoch", "batch"})
# Masked before a line is read: progress bars, rates, timestamps, times, durations.
_MASKS = (
    re.compile(r"\d+%\|[^|\n]*\|[^\n]*?(?:\]|$)"),
    re.compile(r"\[\d+:\d{2}(?::\d{2})?<[^\]]*\]"),
    re.compile(r"\d+(?:\.\d+)?\s?(?:it/s|s/it|samples/s|examples/s|tokens/s|steps/s)"),
    re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
    re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"),
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
    re.compile(r"\b\d+/\d+\b(?=\s*\[)"),
)


@dataclass(frozen=True)
class Point:
    key: str
    step: int | None
    value: float
    time: float | None = None  # the wall time the writer recorded, where it records one


def _masked(line: str) -> str:
    for mask in _MASKS:
        line = mask.sub(" ", line)
    return line


def default_points(line: str) -> list[Point]:
    """The metrics one printed line holds under the default pattern."""
    text = _masked(line)
    found = _STEP.search(text)
    step = int(found.group(1)) if found else None
    if found:
        text = text[: found.start()] + " " + text[found.end() :]
    points = []
    for match in _PAIR.finditer(text):
        key, separator = match.group("key").replace(" ", "_"), match.group("sep").strip()
        if key.lower() in _STEP_WORDS:
            continue
        if not separator and step is None:
            continue  # "version 1.2": a bare pair counts only on a line with a step
        value = float(match.group("value"))
        points.append(Point(key=key, step=step, value=value))
    return points


def compile_pattern(text: str) -> re.Pattern[str]:
    """A user pattern, checked: it must name its metrics."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise UsageError(f"[capture] metrics_pattern is not a regular expression: {exc}") from None
    names = set(pattern.groupindex)
    if not names - {"step"}:
        raise UsageError(
            "[capture] metrics_pattern needs named groups: key and value, or one per metric "
            "such as (?P<loss>[0-9.eE+-]+)"
        )
    return pattern


def pattern_points(pattern: re.Pattern[str], line: str) -> list[Point]:
    """The metrics a user pattern finds in one line (every match)."""
    points = []
    for match in pattern.finditer(line):
        groups = match.groupdict()
        raw_step = groups.pop("step", None)
        step = int(raw_step) if raw_step and raw_step.isdigit() else None
        if "key" in groups and "value" in groups:
            pairs = [(groups["key"], groups["value"])]
        else:
            pairs = [(k, v) for k, v in groups.items() if k not in ("key", "value")]
        for key, raw in pairs:
            try:
                value = float(raw) if raw is not None else math.nan
            except ValueError:
                continue
            if key and raw is not None:
                points.append(Point(key=key, step=step, value=value))
    return points


def read_points(lines: Iterable[str], pattern: re.Pattern[str] | None = None) -> Iterator[Point]:
    """Every metric point in the lines, with a step for each: a line without one takes
    one past the key's previous step (0 for its first)."""
    last: dict[str, int] = {}
    for line in lines:
        found = pattern_points(pattern, line) if pattern else default_points(line)
        for point in found:
            step = point.step if point.step is not None else last.get(point.key, -1) + 1
            last[point.key] = step
            yield Point(key=point.key, step=step, value=point.value)


# A CSV metric log: Lightning's CSVLogger writes ``metrics.csv`` with a ``step`` column
# and a column per metric, cells empty where a row does not log that metric.
CSV_LOG_NAMES = frozenset({"metrics.csv"})


def csv_points(text: str) -> list[Point]:
    """The points of a CSV metric log; [] for a CSV of another shape (no ``step``
    column, or a column that is not numbers)."""
    import csv
    import io

    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or "step" not in header:
        return []
    step_at = header.index("step")
    points = []
    for row in rows:
        if len(row) != len(header) or not row[step_at].strip().isdigit():
            continue
        step = int(row[step_at])
        for index, cell in enumerate(row):
            if index == step_at or not cell.strip() or not header[index]:
                continue
            try:
                value = float(cell)
            except ValueError:
                return []  # a text column: not a metric log
            points.append(Point(key=header[index], step=step, value=value))
    return points


TENSORBOARD_PREFIX = "events.out.tfevents."

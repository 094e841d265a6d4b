"""Per-run JSON objects (params, metric summaries, tags) assembled inside the database.

Each run's rows of a table come back as one JSON text, ``{"key": value, ...}``,
built by plain string concatenation from JSON that Python wrote: the database
never parses or prints a number, so every double comes back bit for bit
(SQLite's JSON functions keep only 15 digits). SQLite and PostgreSQL spell the
aggregation differently; ``@compiles`` picks the spelling per dialect.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from lockstep.core.records import MetricSummary
from lockstep.meta import schema


class _ObjectText(FunctionElement[Any]):
    """``{"key": value, ...}`` over a group, from a key and a value that is JSON text."""

    name = "lockstep_object_text"
    inherit_cache = True


class _Quote(FunctionElement[Any]):
    """A text value as a JSON string literal."""

    name = "lockstep_quote"
    inherit_cache = True


@compiles(_ObjectText, "sqlite")
def _object_text_sqlite(element: _ObjectText, compiler: SQLCompiler, **kw: Any) -> str:
    key, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"'{{' || group_concat(json_quote({key}) || ':' || {value}, ',') || '}}'"


@compiles(_ObjectText, "postgresql")
def _object_text_postgresql(element: _ObjectText, compiler: SQLCompiler, **kw: Any) -> str:
    key, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"'{{' || string_agg(CAST(to_json({key}) AS text) || ':' || {value}, ',') || '}}'"


@compiles(_Quote, "sqlite")
def _quote_sqlite(element: _Quote, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_quote({compiler.process(element.clauses, **kw)})"


@compiles(_Quote, "postgresql")
def _quote_postgresql(element: _Quote, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(to_json({compiler.process(element.clauses, **kw)}) AS text)"


def _per_run(table: sa.Table, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A correlated subquery: this run's rows of table as one JSON object text."""
    runs = schema.runs
    return (
        sa.select(_ObjectText(table.c.key, value))
        .where(table.c.run_id == runs.c.id)
        .correlate(runs)
        .scalar_subquery()
    )


def params_json() -> ColumnElement[Any]:
    return _per_run(schema.params, schema.params.c.value_json)


def summaries_json() -> ColumnElement[Any]:
    return _per_run(schema.metric_summaries, schema.metric_summaries.c.summary_json)


def tags_json() -> ColumnElement[Any]:
    return _per_run(schema.tags, _Quote(schema.tags.c.value))


def _loads(text: str | None) -> dict[str, Any]:
    """Decode an aggregate (NULL when the run has no rows)."""
    if text is None:
        return {}
    try:
        return dict(orjson.loads(text))
    except orjson.JSONDecodeError:
        # NaN and Infinity: only the standard library's parser reads them.
        return dict(json.loads(text))


def decode_params(text: str | None) -> dict[str, Any]:
    return dict(sorted(_loads(text).items()))


def decode_tags(text: str | None) -> dict[str, str]:
    return dict(sorted(_loads(text).items()))


def decode_summaries(text: str | None) -> dict[str, MetricSummary]:
    return {
        key: MetricSummary(key, float(last), int(step), float(low), float(high), int(count))
        for key, (last, step, low, high, count) in sorted(_loads(text).items())
    }

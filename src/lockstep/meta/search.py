"""Compile the filter and sort tree of ``core.query`` into SQLAlchemy Core expressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lockstep.core.query import BoolOp, Compare, Field, Node, Not, Scalar, SortKey
from lockstep.errors import UsageError
from lockstep.meta import schema

_R = schema.runs
_E = schema.experiments


def _attribute_column(key: str) -> sa.ColumnElement[Any]:
    if key == "experiment":
        return _E.c.name
    if key == "duration":
        return _R.c.end_time - _R.c.start_time
    return _R.c[key]


def _time_value(key: str, value: Scalar) -> Scalar:
    """Times compare with unix seconds or ISO dates (``start_time > '2026-11-01'``)."""
    if isinstance(value, str) and key in ("start_time", "end_time"):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            raise UsageError(
                f"{key} compares with unix seconds or an ISO date, not {value!r}"
            ) from None
    return value


def _apply(column: sa.ColumnElement[Any], op: str, values: tuple[Scalar, ...]) -> Any:
    if op == "in":
        return column.in_(values)
    if op == "like":
        return column.like(values[0])
    if op == "isnull":
        return column.is_(None)
    if op == "notnull":
        return column.is_not(None)
    value = values[0]
    return {
        "=": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[op]


def _is_number(value: Scalar) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _param_condition(node: Compare) -> Any:
    p = schema.params
    base = sa.and_(p.c.run_id == _R.c.id, p.c.key == node.field.key)
    if node.op == "isnull":
        present = sa.exists().where(base, p.c.value_type != "null")
        return sa.not_(present)
    if node.op == "notnull":
        return sa.exists().where(base, p.c.value_type != "null")
    values = node.values
    if all(_is_number(v) for v in values):
        return sa.exists().where(base, _apply(p.c.value_num, node.op, values))
    if all(isinstance(v, bool) for v in values):
        return sa.exists().where(
            base,
            p.c.value_type == "bool",
            _apply(p.c.value_num, node.op, tuple(float(bool(v)) for v in values)),
        )
    as_text = tuple(v if isinstance(v, str) else str(v) for v in values)
    return sa.exists().where(base, _apply(p.c.value_text, node.op, as_text))


def _metric_condition(node: Compare) -> Any:
    m = schema.metric_summaries
    base = sa.and_(m.c.run_id == _R.c.id, m.c.key == node.field.key)
    if node.op == "isnull":
        return sa.not_(sa.exists().where(base))
    if node.op == "notnull":
        return sa.exists().where(base)
    if not all(_is_number(v) for v in node.values):
        raise UsageError(f"metrics.{node.field.key} compares with numbers only")
    return sa.exists().where(base, _apply(m.c.last, node.op, node.values))


def _tag_condition(node: Compare) -> Any:
    t = schema.tags
    base = sa.and_(t.c.run_id == _R.c.id, t.c.key == node.field.key)
    if node.op == "isnull":
        return sa.not_(sa.exists().where(base))
    if node.op == "notnull":
        return sa.exists().where(base)
    values = tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in node.values)
    return sa.exists().where(base, _apply(t.c.value, node.op, values))


def compile_filter(node: Node) -> Any:
    """A boolean SQL expression over ``runs`` (joined to ``experiments``)."""
    if isinstance(node, BoolOp):
        parts = [compile_filter(item) for item in node.items]
        return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
    if isinstance(node, Not):
        return sa.not_(compile_filter(node.item))
    namespace = node.field.namespace
    if namespace == "params":
        return _param_condition(node)
    if namespace == "metrics":
        return _metric_condition(node)
    if namespace == "tags":
        return _tag_condition(node)
    values = tuple(_time_value(node.field.key, v) for v in node.values)
    return _apply(_attribute_column(node.field.key), node.op, values)


def sort_terms(key: SortKey, index: int) -> tuple[list[Any], Any]:
    """The ORDER BY terms for one sort key and the outer join they need (or None)."""
    field: Field = key.field
    columns: list[sa.ColumnElement[Any]]
    join: Any = None
    if field.namespace == "attributes":
        columns = [_attribute_column(field.key)]
    else:
        table = {
            "metrics": schema.metric_summaries,
            "params": schema.params,
            "tags": schema.tags,
        }[field.namespace]
        alias = table.alias(f"sort_{field.namespace}_{index}")
        join = (alias, sa.and_(alias.c.run_id == _R.c.id, alias.c.key == field.key))
        if field.namespace == "metrics":
            columns = [alias.c.last]
        elif field.namespace == "params":
            # Numbers sort by value; anything else by its text.
            columns = [alias.c.value_num, alias.c.value_text]
        else:
            columns = [alias.c.value]
    terms = [(c.desc() if key.descending else c.asc()).nulls_last() for c in columns]
    return terms, join

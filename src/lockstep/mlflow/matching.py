"""MLflow's search clauses judged in Python, for the lists that are short (experiments,
registered models and their versions, logged models); runs are searched in SQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lockstep.mlflow import search
from lockstep.mlflow.values import field_int, field_text, invalid, page_start


def filtered(
    rows: list[dict[str, Any]],
    body: Mapping[str, Any],
    matches: Callable[[dict[str, Any], search.Clause], bool],
) -> list[dict[str, Any]]:
    """The rows that every clause of the request's filter matches."""
    for clause in search.parse_clauses(field_text(body, "filter", required=False, limit=10_000)):
        rows = [r for r in rows if matches(r, clause)]
    return rows


def page(
    rows: list[dict[str, Any]], body: Mapping[str, Any], field: str, default_limit: int
) -> dict[str, Any]:
    """The answer's page of rows under field, from the request's page token and
    max_results, with the token of the next page when there is one."""
    limit = field_int(body, "max_results", default_limit) or default_limit
    if limit <= 0:
        raise invalid("max_results must be positive")
    start = page_start(body.get("page_token"))
    answer: dict[str, Any] = {field: rows[start : start + limit]}
    if start + limit < len(rows):
        answer["next_page_token"] = str(start + limit)
    return answer


def compare(value: Any, op: str, wanted: tuple[Any, ...]) -> bool:
    """One clause on a value in Python (experiments and registry lists are short)."""
    import fnmatch

    if op == "isnull":
        return value is None
    if op == "notnull":
        return value is not None
    if value is None:
        return False
    if op in ("like", "ilike"):
        pattern = str(wanted[0]).replace("%", "*").replace("_", "?")
        text = str(value)
        if op == "ilike":
            return fnmatch.fnmatchcase(text.lower(), pattern.lower())
        return fnmatch.fnmatchcase(text, pattern)
    if op == "in":
        return str(value) in {str(w) for w in wanted}
    if op == "notin":
        return str(value) not in {str(w) for w in wanted}
    target = wanted[0]
    if isinstance(target, int | float) and not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
    elif not isinstance(target, int | float):
        value, target = str(value), str(target)
    try:
        return bool(
            {
                "=": value == target,
                "!=": value != target,
                "<": value < target,
                "<=": value <= target,
                ">": value > target,
                ">=": value >= target,
            }[op]
        )
    except TypeError:
        return False


def tag_value(items: list[dict[str, Any]], key: str) -> Any:
    return next((t["value"] for t in items if t["key"] == key), None)


def experiment_matches(row: dict[str, Any], clause: search.Clause) -> bool:
    if clause.namespace == "tags":
        return compare(tag_value(row["tags"], clause.key), clause.op, clause.values)
    if clause.key not in ("name", "creation_time", "last_update_time", "experiment_id"):
        raise invalid(f"Invalid attribute key {clause.key!r} for experiments")
    return compare(row[clause.key], clause.op, clause.values)


def registry_tag(row: dict[str, Any], clause: search.Clause) -> bool:
    """A registry tag clause: MLflow's client filters prompts out with ``!=``, which a
    model without the tag passes."""
    value = tag_value(row["tags"], clause.key)
    if value is None and clause.op in ("!=", "notin"):
        return True
    return compare(value, clause.op, clause.values)


def registered_matches(row: dict[str, Any], clause: search.Clause) -> bool:
    if clause.namespace == "tags":
        return registry_tag(row, clause)
    if clause.key not in ("name",):
        raise invalid(f"Invalid attribute key {clause.key!r} for registered models")
    return compare(row["name"], clause.op, clause.values)


def version_matches(row: dict[str, Any], clause: search.Clause) -> bool:
    if clause.namespace == "tags":
        return registry_tag(row, clause)
    key = {"version_number": "version"}.get(clause.key, clause.key)
    if key not in ("name", "version", "run_id", "source", "model_id", "current_stage"):
        raise invalid(f"Invalid attribute key {clause.key!r} for model versions")
    value = row.get(key)
    if key == "version":
        value = int(str(value))
    return compare(value, clause.op, clause.values)


def logged_model_matches(model: dict[str, Any], clause: search.Clause) -> bool:
    info = model["info"]
    if clause.namespace == "tags":
        return compare(tag_value(info.get("tags", []), clause.key), clause.op, clause.values)
    if clause.namespace == "params":
        return compare(
            tag_value(model["data"].get("params", []), clause.key), clause.op, clause.values
        )
    if clause.namespace == "metrics":
        value = next(
            (m["value"] for m in model["data"].get("metrics", []) if m["key"] == clause.key), None
        )
        return compare(value, clause.op, clause.values)
    key = {
        "model_id": "model_id",
        "name": "name",
        "status": "status",
        "source_run_id": "source_run_id",
        "creation_time": "creation_timestamp_ms",
        "model_type": "model_type",
    }.get(clause.key)
    if key is None:
        raise invalid(f"Invalid attribute key {clause.key!r} for logged models")
    return compare(info.get(key), clause.op, clause.values)

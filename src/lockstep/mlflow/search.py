"""MLflow's search grammar (runs, experiments, models) parsed into lockstep's filter tree.

MLflow's filters are clauses joined by AND: ``metrics.acc > 0.9 and params.lr = '0.1'
and tags.`mlflow.source.name` LIKE '%train%' and attributes.status IN ('FINISHED')``.
Keys may be back-quoted or double-quoted; comparators are ``= != < <= > >= LIKE ILIKE
IN NOT IN IS NULL IS NOT NULL``. Nothing is spliced into SQL: the tree compiles through
the same code as lockstep's own filters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lockstep.core.query import BoolOp, Compare, Field, Node, Not, Scalar, SortKey
from lockstep.errors import MlflowApiError

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w]))
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<dquoted>"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]*`)
  | (?P<op>!=|<=|>=|==|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
    """,
    re.VERBOSE,
)

_NAMESPACES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
    "dataset": "datasets",
    "datasets": "datasets",
}
# MLflow's run attributes -> lockstep's (times are milliseconds in MLflow).
RUN_ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "status": "status",
    "start_time": "start_time",
    "created": "start_time",
    "creation_time": "start_time",
    "end_time": "end_time",
}
STATUSES = {
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "killed",
}
DATASET_FIELDS = ("name", "digest", "context")
MAX_CLAUSES = 100


def _bad(problem: str) -> MlflowApiError:
    return MlflowApiError("INVALID_PARAMETER_VALUE", problem)


@dataclass(frozen=True)
class Clause:
    """One comparison as MLflow wrote it: namespace, key, comparator, values."""

    namespace: str
    key: str
    op: str  # = != < <= > >= like ilike in notin isnull notnull
    values: tuple[Scalar, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _bad(f"invalid filter {text!r}: unexpected character {text[pos]!r} at {pos + 1}")
        if match.lastgroup != "ws":
            found.append((match.lastgroup or "", match.group()))
        pos = match.end()
    found.append(("end", ""))
    return found


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse_clauses(text: str, *, default_namespace: str = "attributes") -> list[Clause]:
    """The AND-joined clauses of an MLflow filter (an empty filter has none)."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    pos = 0
    clauses: list[Clause] = []

    def peek_word(*words: str) -> bool:
        kind, value = tokens[pos]
        return kind == "word" and value.lower() in words

    while True:
        if len(clauses) >= MAX_CLAUSES:
            raise _bad(f"a filter may have at most {MAX_CLAUSES} clauses")
        kind, value = tokens[pos]
        if kind in ("backtick", "dquoted"):
            namespace, key = default_namespace, _unquote(value)
            pos += 1
        elif kind == "word":
            pos += 1
            if value.lower() in _NAMESPACES and tokens[pos] == ("punct", "."):
                namespace = _NAMESPACES[value.lower()]
                pos += 1
                kind, value = tokens[pos]
                if kind in ("backtick", "dquoted"):
                    key = _unquote(value)
                    pos += 1
                else:
                    parts = []
                    while tokens[pos][0] in ("word", "number"):
                        parts.append(tokens[pos][1])
                        pos += 1
                        if tokens[pos] == ("punct", ".") and tokens[pos + 1][0] in (
                            "word",
                            "number",
                        ):
                            pos += 1
                            continue
                        break
                    if not parts:
                        raise _bad(f"invalid filter {text!r}: expected a key after {namespace}.")
                    key = ".".join(parts)
            else:
                namespace, key = default_namespace, value
        else:
            raise _bad(f"invalid filter {text!r}: expected an identifier such as metrics.acc")
        kind, value = tokens[pos]
        op: str
        values: tuple[Scalar, ...]
        if kind == "op":
            pos += 1
            op = "=" if value == "==" else value
            values = (_value(tokens[pos], text),)
            pos += 1
        elif peek_word("like", "ilike"):
            op = value.lower()
            pos += 1
            values = (_value(tokens[pos], text),)
            pos += 1
        elif peek_word("in") or peek_word("not"):
            op = "in"
            if peek_word("not"):
                pos += 1
                if not peek_word("in"):
                    raise _bad(f"invalid filter {text!r}: expected IN after NOT")
                op = "notin"
            pos += 1
            if tokens[pos] != ("punct", "("):
                raise _bad(f"invalid filter {text!r}: IN needs a list in parentheses")
            pos += 1
            items: list[Scalar] = []
            while True:
                items.append(_value(tokens[pos], text))
                pos += 1
                if tokens[pos] == ("punct", ","):
                    pos += 1
                    continue
                if tokens[pos] == ("punct", ")"):
                    pos += 1
                    break
                raise _bad(f"invalid filter {text!r}: expected ',' or ')' in the IN list")
            values = tuple(items)
        elif peek_word("is"):
            pos += 1
            op = "isnull"
            if peek_word("not"):
                op = "notnull"
                pos += 1
            if not peek_word("null"):
                raise _bad(f"invalid filter {text!r}: expected NULL after IS")
            pos += 1
            values = ()
        else:
            raise _bad(f"invalid filter {text!r}: expected a comparator after {key!r}")
        clauses.append(Clause(namespace, key, op, values))
        if tokens[pos][0] == "end":
            return clauses
        if not peek_word("and"):
            raise _bad(f"invalid filter {text!r}: clauses are joined by AND (MLflow has no OR)")
        pos += 1


def _value(token: tuple[str, str], text: str) -> Scalar:
    kind, value = token
    if kind == "number":
        number = float(value)
        return int(number) if re.fullmatch(r"[-+]?\d+", value) else number
    if kind in ("string", "dquoted"):
        return _unquote(value)
    raise _bad(f"invalid filter {text!r}: expected a value, found {value or 'the end'!r}")


def _compare(field: Field, op: str, values: tuple[Scalar, ...]) -> Node:
    if op == "notin":
        # MLflow: the key is there and its value is none of these.
        return BoolOp(
            op="and",
            items=(
                Compare(field=field, op="notnull", values=()),
                Not(item=Compare(field=field, op="in", values=values)),
            ),
        )
    return Compare(field=field, op=op, values=values)


def run_filter(text: str) -> tuple[Node | None, list[Clause]]:
    """lockstep's tree for an MLflow runs filter, and the dataset clauses it cannot hold."""
    items: list[Node] = []
    datasets: list[Clause] = []
    for clause in parse_clauses(text):
        namespace, key, op, values = clause.namespace, clause.key, clause.op, clause.values
        if namespace == "datasets":
            if key not in DATASET_FIELDS:
                raise _bad(f"datasets.{key} is not searchable; use datasets.name, digest, context")
            datasets.append(clause)
            continue
        if namespace == "tags" and key == "mlflow.runName":
            namespace, key = "attributes", "run_name"
        if namespace == "attributes":
            if key == "user_id":
                namespace, key = "tags", "mlflow.user"
            elif key not in RUN_ATTRIBUTES:
                raise _bad(
                    f"invalid attribute {key!r}; searchable: {', '.join(sorted(RUN_ATTRIBUTES))}"
                )
        if namespace == "attributes":
            key = RUN_ATTRIBUTES[key]
            if key == "status":
                values = tuple(_status(v) for v in values)
            elif key in ("start_time", "end_time"):
                if not all(isinstance(v, int | float) for v in values):
                    raise _bad(f"{key} compares with milliseconds since the epoch")
                values = tuple(float(v) / 1000.0 for v in values)  # type: ignore[arg-type]
        if namespace == "metrics" and not all(isinstance(v, int | float) for v in values):
            raise _bad(f"metrics.{key} compares with numbers only")
        if namespace in ("params", "tags") and op in ("<", "<=", ">", ">="):
            raise _bad(f"{namespace}.{key} is text; compare it with = != LIKE ILIKE IN")
        items.append(_compare(Field(namespace=namespace, key=key), op, values))  # type: ignore[arg-type]
    node: Node | None
    if not items:
        node = None
    elif len(items) == 1:
        node = items[0]
    else:
        node = BoolOp(op="and", items=tuple(items))
    return node, datasets


def _status(value: Scalar) -> str:
    found = STATUSES.get(str(value).upper())
    if found is None:
        raise _bad(f"unknown run status {value!r}; one of {', '.join(STATUSES)}")
    return found


def run_order(order_by: list[str]) -> list[SortKey]:
    """lockstep's sort keys for MLflow's order_by (``metrics.acc DESC``, ``start_time``)."""
    keys: list[SortKey] = []
    for item in order_by:
        text = item.strip()
        descending = False
        match = re.search(r"\s+(asc|desc)\s*$", text, re.IGNORECASE)
        if match:
            descending = match.group(1).lower() == "desc"
            text = text[: match.start()]
        clauses = parse_clauses(f"{text} IS NULL") if text else []
        if len(clauses) != 1:
            raise _bad(f"invalid order_by {item!r}")
        namespace, key = clauses[0].namespace, clauses[0].key
        if namespace == "tags" and key == "mlflow.runName":
            namespace, key = "attributes", "run_name"
        if namespace == "attributes":
            if key not in RUN_ATTRIBUTES:
                raise _bad(f"invalid order_by attribute {key!r}")
            key = RUN_ATTRIBUTES[key]
        if namespace == "datasets":
            raise _bad("order_by cannot sort by datasets")
        keys.append(SortKey(field=Field(namespace=namespace, key=key), descending=descending))  # type: ignore[arg-type]
    return keys

"""The run filter and sort grammar, parsed into a small tree (never ``eval``).

Grammar (keywords are case-insensitive)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expr ")" | comparison
    comparison := field op value | field "in" "(" value ("," value)* ")"
                | field "is" ["not"] "null"
    field      := ("params" | "metrics" | "tags" | "attributes" | "attr") "." key
                | attribute                      # id, name, experiment, status, ...
    key        := word ("." word)* | `any text`  # dotted keys stay whole
    op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "like"
    value      := number | 'text' | "text" | true | false | null

Sort: a comma-separated list of fields, each optionally prefixed by ``-`` for
descending, e.g. ``-metrics.acc,params.lr``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from lockstep.errors import InvalidFilter

Namespace = Literal["params", "metrics", "tags", "attributes"]
Scalar = str | int | float | bool | None

ATTRIBUTES = ("id", "name", "experiment", "status", "start_time", "end_time", "duration", "host")
_NAMESPACES: dict[str, Namespace] = {
    "params": "params",
    "param": "params",
    "metrics": "metrics",
    "metric": "metrics",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
}
_OPS = ("==", "!=", "<=", ">=", "=", "<", ">")


@dataclass(frozen=True, kw_only=True)
class Field:
    namespace: Namespace
    key: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.key}"


@dataclass(frozen=True, kw_only=True)
class Compare:
    field: Field
    op: str  # one of = != < <= > >= like in isnull notnull
    values: tuple[Scalar, ...]


@dataclass(frozen=True, kw_only=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Node, ...]


@dataclass(frozen=True, kw_only=True)
class Not:
    item: Node


Node = Compare | BoolOp | Not


@dataclass(frozen=True, kw_only=True)
class SortKey:
    field: Field
    descending: bool


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]*`)
  | (?P<op>==|!=|<=|>=|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z0-9_][A-Za-z0-9_\-]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int  # 1-based


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise InvalidFilter(text, pos + 1, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.depth = 0
        self.terms = 0
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.pos]

    def fail(self, problem: str, token: _Token | None = None) -> InvalidFilter:
        return InvalidFilter(self.text, (token or self.current).column, problem)

    def advance(self) -> _Token:
        token = self.current
        self.pos += 1
        return token

    def at_word(self, *words: str) -> bool:
        return self.current.kind == "word" and self.current.text.lower() in words

    def expect_punct(self, char: str) -> None:
        if self.current.kind != "punct" or self.current.text != char:
            raise self.fail(f"expected {char!r}")
        self.advance()

    # expr
    def parse_expression(self) -> Node:
        node = self.parse_or()
        if self.current.kind != "end":
            raise self.fail(f"unexpected {self.current.text!r}; join conditions with and / or")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.at_word("or"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp(op="or", items=tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.at_word("and"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp(op="and", items=tuple(items))

    def parse_not(self) -> Node:
        if self.at_word("not") or (self.current.kind == "punct" and self.current.text == "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"nested more than {MAX_DEPTH} levels deep; simplify the filter")
            try:
                if self.at_word("not"):
                    self.advance()
                    return Not(item=self.parse_not())
                self.advance()
                node = self.parse_or()
                self.expect_punct(")")
                return node
            finally:
                self.depth -= 1
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.fail(f"more than {MAX_TERMS} conditions; use in (...) or fewer conditions")
        return self.parse_comparison()

    def parse_field(self) -> Field:
        token = self.current
        if token.kind != "word":
            raise self.fail("expected a field such as params.lr, metrics.acc or status")
        self.advance()
        namespace = _NAMESPACES.get(token.text.lower())
        if namespace is None:
            if token.text.lower() in ATTRIBUTES:
                return Field(namespace="attributes", key=token.text.lower())
            raise self.fail(
                f"unknown field {token.text!r}; use params.*, metrics.*, tags.* or one of "
                + ", ".join(ATTRIBUTES),
                token,
            )
        if self.current.kind != "punct" or self.current.text != ".":
            raise self.fail(f"expected '.' and a key after {token.text!r}")
        self.advance()
        key = self.parse_key()
        if namespace == "attributes" and key not in ATTRIBUTES:
            raise self.fail(f"unknown attribute {key!r}; one of " + ", ".join(ATTRIBUTES), token)
        return Field(namespace=namespace, key=key)

    def parse_key(self) -> str:
        if self.current.kind == "backtick":
            return self.advance().text[1:-1]
        parts: list[str] = []
        while True:
            token = self.current
            if token.kind in ("word", "number"):
                parts.append(self.advance().text)
            else:
                raise self.fail("expected a key name (quote odd keys in backticks)")
            if self.current.kind == "punct" and self.current.text == ".":
                self.advance()
                continue
            return ".".join(parts)

    def parse_value(self) -> Scalar:
        token = self.current
        if token.kind == "number":
            if re.fullmatch(r"[-+]?\d+", token.text):
                digits = token.text.lstrip("+-")
                if len(digits) > 19 or not -(2**63) <= int(token.text) < 2**63:
                    raise self.fail("integer out of range (64 bits: -2**63 to 2**63 - 1)")
                self.advance()
                return int(token.text)
            number = float(token.text)
            if not math.isfinite(number):
                raise self.fail("number out of range (past a double's largest value)")
            self.advance()
            return number
        if token.kind == "string":
            self.advance()
            return _unquote(token)
        if token.kind == "word" and token.text.lower() in ("true", "false", "null"):
            self.advance()
            return {"true": True, "false": False, "null": None}[token.text.lower()]
        raise self.fail("expected a value: a number, a 'quoted string', true, false or null")

    def parse_comparison(self) -> Node:
        start = self.current
        node = self._comparison()
        if isinstance(node, Compare) and node.field.namespace == "attributes":
            problem = _attribute_problem(node)
            if problem:
                raise self.fail(problem, start)
        return node

    def _comparison(self) -> Node:
        field = self.parse_field()
        token = self.current
        if token.kind == "op":
            self.advance()
            op = "=" if token.text == "==" else token.text
            value = self.parse_value()
            if value is None:
                if op not in ("=", "!="):
                    raise self.fail("null can only be compared with = or !=", token)
                return Compare(field=field, op="isnull" if op == "=" else "notnull", values=())
            return Compare(field=field, op=op, values=(value,))
        if self.at_word("like"):
            self.advance()
            pattern_token = self.current
            value = self.parse_value()
            if not isinstance(value, str):
                raise self.fail("like needs a 'quoted pattern' with % and _", pattern_token)
            return Compare(field=field, op="like", values=(value,))
        if self.at_word("in"):
            self.advance()
            self.expect_punct("(")
            values = [self.parse_value()]
            while self.current.kind == "punct" and self.current.text == ",":
                self.advance()
                values.append(self.parse_value())
            self.expect_punct(")")
            return Compare(field=field, op="in", values=tuple(values))
        if self.at_word("is"):
            self.advance()
            negate = False
            if self.at_word("not"):
                self.advance()
                negate = True
            if not self.at_word("null"):
                raise self.fail("expected null after is")
            self.advance()
            return Compare(field=field, op="notnull" if negate else "isnull", values=())
        raise self.fail("expected an operator: = != < <= > >= like in is")


MAX_DEPTH = 100
MAX_TERMS = 500
_NUMERIC_ATTRIBUTES = ("duration",)
_TIME_ATTRIBUTES = ("start_time", "end_time")
_STATUSES = ("running", "finished", "failed", "killed", "crashed")


def _attribute_problem(node: Compare) -> str | None:
    """What is wrong with comparing an attribute with these values, if anything: a
    duration is a number, a time a number or an ISO date, a status one of its names."""
    key, op, values = node.field.key, node.op, node.values
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if key in _NUMERIC_ATTRIBUTES and not numbers:
        return f"{key} is a number of seconds; compare it with a number"
    if key in _TIME_ATTRIBUTES and not numbers:
        for value in values:
            if not isinstance(value, str) or not re.fullmatch(
                r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?", value
            ):
                return f"{key} compares with a number (unix time) or an ISO date like '2026-11-01'"
    if key not in _NUMERIC_ATTRIBUTES + _TIME_ATTRIBUTES:
        if op in ("<", "<=", ">", ">=") and key == "status":
            return "status is a name; compare it with =, !=, in or like"
        if not all(isinstance(v, str) for v in values):
            return f"{key} is text; compare it with a 'quoted string'"
        if key == "status" and op in ("=", "!=", "in"):
            unknown = [v for v in values if v not in _STATUSES]
            if unknown:
                return f"unknown status {unknown[0]!r}; one of " + ", ".join(_STATUSES)
    return None


def parse_filter(text: str) -> Node | None:
    """Parse a filter expression; an empty one means no filter."""
    if not text.strip():
        return None
    return _Parser(text).parse_expression()


def parse_sort(text: str) -> list[SortKey]:
    """Parse ``-metrics.acc,params.lr`` into sort keys."""
    keys: list[SortKey] = []
    offset = 0
    for part in text.split(","):
        stripped = part.strip()
        column = offset + (len(part) - len(part.lstrip())) + 1
        offset += len(part) + 1
        if not stripped:
            if text.strip():
                raise InvalidFilter(text, column, "empty sort key")
            continue
        descending = stripped.startswith("-")
        body = stripped.lstrip("+-").strip()
        parser = _Parser(body)
        try:
            field = parser.parse_field()
            if parser.current.kind != "end":
                raise parser.fail("unexpected text after the sort field")
        except InvalidFilter as exc:
            raise InvalidFilter(text, column + exc.column, exc.problem) from None
        keys.append(SortKey(field=field, descending=descending))
    return keys


def _value_text(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _field_text(field: Field) -> str:
    if field.namespace == "attributes":
        return field.key
    if "`" in field.key:
        from lockstep.errors import UsageError

        raise UsageError(f"the key {field.key!r} cannot be written in a filter (it holds a `)")
    return f"{field.namespace}.`{field.key}`"


def filter_text(node: Node | None) -> str:
    """A filter tree written back in the grammar: parse_filter of it gives the same tree."""
    if node is None:
        return ""
    if isinstance(node, Not):
        return f"not ({filter_text(node.item)})"
    if isinstance(node, BoolOp):
        return "(" + f" {node.op} ".join(filter_text(item) for item in node.items) + ")"
    field = _field_text(node.field)
    if node.op == "isnull":
        return f"{field} is null"
    if node.op == "notnull":
        return f"{field} is not null"
    if node.op == "in":
        return f"{field} in (" + ", ".join(_value_text(v) for v in node.values) + ")"
    return f"{field} {node.op} {_value_text(node.values[0])}"


def sort_text(keys: list[SortKey] | tuple[SortKey, ...]) -> str:
    """Sort keys written back in the grammar."""
    return ",".join(("-" if k.descending else "") + _field_text(k.field) for k in keys)

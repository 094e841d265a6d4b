from __future__ import annotations

import pytest

from lockstep.core.query import BoolOp, Compare, Field, Not, parse_filter, parse_sort
from lockstep.errors import InvalidFilter


def test_comparison_and_boolean_structure() -> None:
    node = parse_filter("params.lr > 0.01 and (metrics.acc >= 0.9 or tags.stage = 'prod')")
    assert isinstance(node, BoolOp) and node.op == "and"
    first, second = node.items
    assert first == Compare(field=Field(namespace="params", key="lr"), op=">", values=(0.01,))
    assert isinstance(second, BoolOp) and second.op == "or"


def test_dotted_keys_stay_whole() -> None:
    node = parse_filter("params.optimizer.lr = 0.1")
    assert isinstance(node, Compare)
    assert node.field.key == "optimizer.lr"


def test_backtick_keys_and_attributes() -> None:
    node = parse_filter("params.`my key` != 'x' and status = 'finished'")
    assert isinstance(node, BoolOp)
    assert node.items[0].field.key == "my key"  # type: ignore[union-attr]
    assert node.items[1].field == Field(namespace="attributes", key="status")  # type: ignore[union-attr]


def test_in_like_null_and_not() -> None:
    node = parse_filter("not params.opt in ('adam', 'sgd') or name like 'brisk%'")
    assert isinstance(node, BoolOp)
    assert isinstance(node.items[0], Not)
    assert parse_filter("params.x = null") == Compare(
        field=Field(namespace="params", key="x"), op="isnull", values=()
    )
    assert parse_filter("params.x is not null") == Compare(
        field=Field(namespace="params", key="x"), op="notnull", values=()
    )


def test_keywords_are_case_insensitive_and_numbers_keep_type() -> None:
    node = parse_filter("params.a = 3 AND params.b = 3.0 AND params.c = TRUE")
    assert isinstance(node, BoolOp)
    values = [item.values[0] for item in node.items]  # type: ignore[union-attr]
    assert values == [3, 3.0, True]
    assert type(values[0]) is int and type(values[1]) is float


def test_empty_filter_is_none() -> None:
    assert parse_filter("  ") is None


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("params.lr >> 3", 12, "expected a value"),
        ("params.lr > 0.1 metrics.acc > 1", 17, "and / or"),
        ("foo.bar = 1", 1, "unknown field"),
        ("params.lr > ", 13, "expected a value"),
        ("(params.lr > 1", 15, "expected ')'"),
        ("params.lr ! 1", 11, "unexpected character"),
        ("params.x like 3", 15, "quoted pattern"),
    ],
)
def test_errors_point_at_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(text)
    assert caught.value.column == column
    assert fragment in str(caught.value)


def test_filter_is_never_evaluated_as_python() -> None:
    with pytest.raises(InvalidFilter):
        parse_filter("__import__('os').system('true')")


def test_sort_keys() -> None:
    keys = parse_sort("-metrics.acc, params.lr,start_time")
    assert [(str(k.field), k.descending) for k in keys] == [
        ("metrics.acc", True),
        ("params.lr", False),
        ("attributes.start_time", False),
    ]
    assert parse_sort("") == []
    with pytest.raises(InvalidFilter):
        parse_sort("-metrics.acc,,params.lr")
    with pytest.raises(InvalidFilter):
        parse_sort("nonsense")

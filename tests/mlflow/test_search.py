"""MLflow's search grammar parsed into lockstep's filter tree, and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.core.query import BoolOp, Compare, Field, Not, SortKey
from lockstep.errors import MlflowApiError
from lockstep.mlflow.search import parse_clauses, run_filter, run_order


def test_clauses_joined_by_and_with_every_comparator() -> None:
    found = parse_clauses(
        "metrics.acc >= 0.9 AND params.lr = '0.1' and tags.`mlflow.source.name` LIKE '%train%' "
        "and tags.team ILIKE 'VIS%' and attributes.status IN ('FINISHED', 'FAILED') "
        "and params.opt NOT IN ('adam') and tags.note IS NULL and metrics.\"my loss\" IS NOT NULL"
    )
    assert [(c.namespace, c.key, c.op, c.values) for c in found] == [
        ("metrics", "acc", ">=", (0.9,)),
        ("params", "lr", "=", ("0.1",)),
        ("tags", "mlflow.source.name", "like", ("%train%",)),
        ("tags", "team", "ilike", ("VIS%",)),
        ("attributes", "status", "in", ("FINISHED", "FAILED")),
        ("params", "opt", "notin", ("adam",)),
        ("tags", "note", "isnull", ()),
        ("metrics", "my loss", "notnull", ()),
    ]


def test_run_attributes_map_to_lockstep_and_times_are_milliseconds() -> None:
    node, datasets = run_filter(
        "attributes.status = 'FINISHED' and attributes.start_time > 1700000000000 "
        "and tags.mlflow.runName = 'first' and attributes.user_id = 'ann'"
    )
    assert datasets == []
    assert isinstance(node, BoolOp)
    assert node.items == (
        Compare(field=Field(namespace="attributes", key="status"), op="=", values=("finished",)),
        Compare(
            field=Field(namespace="attributes", key="start_time"), op=">", values=(1700000000.0,)
        ),
        Compare(field=Field(namespace="attributes", key="name"), op="=", values=("first",)),
        Compare(field=Field(namespace="tags", key="mlflow.user"), op="=", values=("ann",)),
    )


def test_not_in_needs_the_key_present() -> None:
    node, _ = run_filter("params.opt NOT IN ('adam', 'sgd')")
    field = Field(namespace="params", key="opt")
    assert node == BoolOp(
        op="and",
        items=(
            Compare(field=field, op="notnull", values=()),
            Not(item=Compare(field=field, op="in", values=("adam", "sgd"))),
        ),
    )


def test_dataset_clauses_are_kept_apart() -> None:
    node, datasets = run_filter("datasets.name = 'iris' and metrics.acc > 0.5")
    assert [(c.key, c.op, c.values) for c in datasets] == [("name", "=", ("iris",))]
    assert node == Compare(field=Field(namespace="metrics", key="acc"), op=">", values=(0.5,))


def test_order_by() -> None:
    assert run_order(["metrics.acc DESC", "attributes.start_time", "params.`a b` asc"]) == [
        SortKey(field=Field(namespace="metrics", key="acc"), descending=True),
        SortKey(field=Field(namespace="attributes", key="start_time"), descending=False),
        SortKey(field=Field(namespace="params", key="a b"), descending=False),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("metrics.acc > 0.9 or metrics.acc < 0.1", "joined by AND"),
        ("attributes.color = 'red'", "invalid attribute"),
        ("metrics.acc = 'high'", "numbers only"),
        ("params.lr > '0.1'", "is text"),
        ("attributes.status = 'DONE'", "unknown run status"),
        ("metrics.acc >", "expected a value"),
        ("metrics.acc ; drop table runs", "unexpected character"),
        ("datasets.schema = 'x'", "not searchable"),
    ],
)
def test_bad_filters_are_invalid_parameter_values(text: str, problem: str) -> None:
    with pytest.raises(MlflowApiError) as caught:
        run_filter(text)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert caught.value.status == 400
    assert problem in str(caught.value)


@given(st.text(max_size=80))
@settings(max_examples=400, deadline=None)
def test_any_text_parses_or_is_refused_with_mlflows_code(text: str) -> None:
    try:
        run_filter(text)
    except MlflowApiError as exc:
        assert exc.error_code == "INVALID_PARAMETER_VALUE"


@given(
    st.lists(
        st.sampled_from(
            [
                "metrics.a",
                "params.`b c`",
                "tags.x",
                "=",
                "!=",
                "<",
                "IN",
                "NOT",
                "LIKE",
                "ILIKE",
                "IS",
                "NULL",
                "AND",
                "OR",
                "(",
                ")",
                ",",
                "'v'",
                '"w"',
                "1.5",
                "-3",
                "attributes.status",
                "datasets.name",
            ]
        ),
        max_size=12,
    )
)
@settings(max_examples=400, deadline=None)
def test_token_soup_parses_or_is_refused(tokens: list[str]) -> None:
    try:
        run_filter(" ".join(tokens))
    except MlflowApiError as exc:
        assert exc.error_code == "INVALID_PARAMETER_VALUE"

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockstep.core.params import decode, encode, flatten, parse_assignment
from lockstep.errors import UsageError


def test_nested_mappings_flatten_to_dotted_keys() -> None:
    assert flatten({"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "bs": 32}) == {
        "opt.lr": 0.1,
        "opt.betas": [0.9, 0.99],
        "bs": 32,
    }


@pytest.mark.parametrize(
    ("value", "kind", "num"),
    [
        (True, "bool", 1.0),
        (3, "int", 3.0),
        (0.5, "float", 0.5),
        ("adam", "str", None),
        (None, "null", None),
        ([1, 2], "list", None),
    ],
)
def test_types_are_preserved(value: object, kind: str, num: float | None) -> None:
    encoded = encode("k", value)
    assert encoded.value_type == kind
    assert encoded.value_num == num
    assert decode(encoded.value_json) == value
    assert type(decode(encoded.value_json)) is type(value)


def test_non_finite_floats_keep_their_value_but_no_number() -> None:
    encoded = encode("k", float("nan"))
    assert encoded.value_num is None
    assert math.isnan(decode(encoded.value_json))


def test_numpy_scalars_become_plain_numbers() -> None:
    import numpy as np

    assert encode("k", np.float32(0.5)).value_type == "float"
    assert encode("k", np.int64(7)).value_json == "7"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: st.lists(children, max_size=3),
        max_leaves=8,
    )
)
def test_encode_decode_round_trip(value: object) -> None:
    assert decode(encode("k", value).value_json) == value


def test_assignments_read_json_values() -> None:
    assert parse_assignment("lr=0.1") == ("lr", 0.1)
    assert parse_assignment("name=adam") == ("name", "adam")
    assert parse_assignment("layers=[1,2]") == ("layers", [1, 2])


def test_assignment_without_equals_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="key=value"):
        parse_assignment("lr")


def test_empty_key_is_refused() -> None:
    with pytest.raises(UsageError):
        flatten({"": 1})


def test_integers_past_64_bits_and_past_a_double_are_kept_whole(tmp_path: Path) -> None:
    import json as json_module
    import sys

    from tests.tracking.test_launcher import lockstep

    huge = "1" + "0" * 400  # past a double's range
    assert lockstep(tmp_path, "init").returncode == 0
    ran = lockstep(
        tmp_path,
        "run",
        "-p",
        f"big={huge}",
        "-p",
        "seed=99999999999999999999",
        "--",
        sys.executable,
        "-c",
        "pass",
    )
    assert ran.returncode == 0, ran.stderr
    params = json_module.loads(lockstep(tmp_path, "show", "last", "--json").stdout)["params"]
    assert params == {"big": int(huge), "seed": 99999999999999999999}
    found = lockstep(tmp_path, "runs", "-f", "params.seed > 1000", "--json")
    assert found.returncode == 0 and len(json_module.loads(found.stdout)) == 1

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from lockstep.core.canonical import canonical_json, digest_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_round_trips(value: object) -> None:
    assert json.loads(canonical_json(value)) == value


def test_key_order_does_not_change_the_digest() -> None:
    assert digest_json({"a": 1, "b": 2}) == digest_json({"b": 2, "a": 1})
    assert digest_json({"a": 1}) != digest_json({"a": 2})
    assert len(digest_json({})) == 64

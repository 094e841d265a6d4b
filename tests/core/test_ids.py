from __future__ import annotations

import random
import time

from hypothesis import given
from hypothesis import strategies as st

from lockstep.core.ids import ID_LENGTH, id_time_ms, looks_like_id_prefix, new_run_id
from lockstep.core.names import new_run_name


def test_ids_are_sortable_by_creation_time() -> None:
    earlier = new_run_id(1_000_000)
    later = new_run_id(1_000_001)
    assert earlier < later
    assert len(earlier) == ID_LENGTH


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_time_round_trips(ms: int) -> None:
    assert id_time_ms(new_run_id(ms)) == ms


def test_ids_are_unique_and_lowercase() -> None:
    ids = {new_run_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(looks_like_id_prefix(i) and i == i.lower() for i in ids)


def test_default_time_is_now() -> None:
    assert abs(id_time_ms(new_run_id()) - time.time() * 1000) < 5_000


def test_ids_and_names_never_touch_the_global_random_state() -> None:
    random.seed(1234)
    state = random.getstate()
    new_run_id()
    new_run_name()
    assert random.getstate() == state

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.errors import ObjectMissing
from lockstep.objects.store import LocalObjectStore


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=5000))
def test_put_get_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = LocalObjectStore(tmp_path_factory.mktemp("objects"))
    stored = store.put_bytes(data)
    assert stored.digest == blake3.blake3(data).hexdigest()
    assert store.read_bytes(stored.digest) == data


def test_layout_names_the_algorithm_and_objects_are_read_only(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(3 << 20))
    stored = store.put_file(source)
    path = tmp_path / "objects" / "blake3" / stored.digest[:2] / stored.digest[2:]
    assert path.is_file() and stored.size == 3 << 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []
    assert list(store.iter_digests()) == [stored.digest]


def test_concurrent_writers_of_the_same_content(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(1 << 20)
    digests: list[str] = []
    threads = [
        threading.Thread(target=lambda: digests.append(store.put_bytes(data).digest))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(digests)) == 1
    assert store.read_bytes(digests[0]) == data
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_missing_object_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing, match="not in the object store"):
        LocalObjectStore(tmp_path).read_bytes("ab" * 32)

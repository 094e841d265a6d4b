"""A real server over each metadata backend, for the server tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.serverproc import served


@pytest.fixture
def server(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """`lockstep server --db` on the backend, started in a directory of its own."""
    home = tmp_path / "served"
    home.mkdir()
    backend.store_dir.mkdir(parents=True, exist_ok=True)
    with served(home, "--db", backend.meta_url) as url:
        yield url

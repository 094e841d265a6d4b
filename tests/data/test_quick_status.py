"""`data status NAME` through the CLI: answered without SQLAlchemy when nothing moved,
and the same answers as the full path when something did."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend, clean_env, run_python
from tests.data.test_datasets import age_files
from tests.tracking.test_launcher import lockstep

STATUS_AND_MODULES = """
import json, sys
from lockstep.cli.main import cli
try:
    cli.main(["data", "status", *{refs!r}, "--json"], standalone_mode=False)
finally:
    print(json.dumps({{"sqlalchemy": "sqlalchemy" in sys.modules}}))
"""


def status(
    project: Path, ref: str | None = "train", env: dict[str, str] | None = None
) -> tuple[dict[str, Any], bool]:
    """The status JSON (of every dataset when ref is None), and whether the process
    imported SQLAlchemy to answer."""
    script = STATUS_AND_MODULES.format(refs=[ref] if ref else [])
    result = run_python(script, env=env or clean_env(), cwd=project)
    assert result.returncode == 0, result.stderr
    *document, modules = result.stdout.strip().splitlines()
    return json.loads("\n".join(document)), json.loads(modules)["sqlalchemy"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    for i in range(20):
        (root / "data" / f"{i:02d}.bin").write_bytes(os.urandom(16))
    age_files(root / "data")
    assert lockstep(root, "init").returncode == 0
    assert lockstep(root, "data", "add", "data", "--name", "train").returncode == 0
    return root


def test_a_clean_status_never_loads_the_metadata_store(project: Path) -> None:
    document, loaded = status(project)
    assert document == {"train": {"version": "v1", "added": [], "removed": [], "modified": []}}
    assert not loaded


def test_after_an_edit_the_full_path_answers_then_the_snapshot_again(project: Path) -> None:
    (project / "data" / "03.bin").write_bytes(b"edited")
    (project / "data" / "04.bin").unlink()
    expected = {
        "train": {
            "version": "v1",
            "added": [],
            "removed": [{"path": "04.bin", "size": 16}],
            "modified": [{"path": "03.bin", "size_before": 16, "size_now": 6}],
        }
    }
    document, loaded = status(project)
    assert document == expected and loaded  # a file moved: hashed, compared in full
    age_files(project / "data")  # time passes: the edit is no longer too recent to trust
    document, loaded = status(project)  # the dating moved every stat: read again
    assert document == expected and loaded
    document, loaded = status(project)
    assert document == expected and not loaded  # the snapshot knows the answer


def test_references_the_peek_cannot_resolve_take_the_full_path(project: Path) -> None:
    assert lockstep(project, "data", "tag", "train@v1", "golden").returncode == 0
    document, loaded = status(project, "train@golden")
    assert document["train"] == {"version": "v1", "added": [], "removed": [], "modified": []}
    assert loaded


def test_a_new_version_elsewhere_is_noticed(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "x.bin").write_bytes(b"x")
    assert lockstep(project, "data", "add", str(other), "--name", "train").returncode == 0
    document, _ = status(project)
    # the snapshot of data/ is not of v2's place: v2's place is what status reads
    assert document["train"] == {"version": "v2", "added": [], "removed": [], "modified": []}


def test_status_is_right_on_either_metadata_backend(backend: Backend, tmp_path: Path) -> None:
    """With LOCKSTEP_HOME and, for PostgreSQL, LOCKSTEP_DB_URL: only a SQLite store is
    peeked at; PostgreSQL takes the full path with the walk already started."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for i in range(5):
        (work / "data" / f"{i}.bin").write_bytes(os.urandom(8))
    age_files(work / "data")
    env = clean_env(**backend.env())
    assert lockstep(work, "data", "add", "data", "--name", "train", env=env).returncode == 0
    (work / "data" / "0.bin").write_bytes(b"changed")
    age_files(work / "data")
    loaded = []
    for _ in range(2):  # the full path (stats moved), then what the snapshot allows
        document, imported = status(work, env=env)
        assert document["train"]["modified"] == [{"path": "0.bin", "size_before": 8, "size_now": 7}]
        loaded.append(imported)
    assert loaded == [True, backend.name == "postgres"]


def test_status_of_every_dataset_takes_the_same_shortcut(project: Path) -> None:
    (project / "labels.csv").write_text("id,label\n1,a\n")
    age_files(project / "labels.csv")
    assert lockstep(project, "data", "add", "labels.csv").returncode == 0
    clean: dict[str, list[Any]] = {"added": [], "removed": [], "modified": []}
    document, loaded = status(project, None)
    assert document == {
        "labels.csv": {"version": "v1", **clean},
        "train": {"version": "v1", **clean},
    }
    assert not loaded
    (project / "labels.csv").write_text("id,label\n1,b\n")
    document, loaded = status(project, None)
    assert document["labels.csv"] == {
        "version": "v1",
        "added": [],
        "removed": [],
        "modified": [{"path": "", "size_before": 13, "size_now": 13}],
    }
    assert document["train"] == {"version": "v1", **clean} and loaded

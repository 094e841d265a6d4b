"""Opening a store: a lost or damaged database is refused, never replaced by an empty one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tracking.test_launcher import lockstep


@pytest.fixture
def store_with_data(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "f.txt").write_text("data\n")
    assert lockstep(project, "init").returncode == 0
    assert lockstep(project, "data", "add", "f.txt", "--name", "f").returncode == 0
    return project


def objects_of(project: Path) -> list[Path]:
    return sorted(p for p in (project / ".lockstep" / "objects").rglob("*") if p.is_file())


@pytest.mark.parametrize("content", [b"", os.urandom(64), b"SQLite format 3\x00"[:10]])
def test_a_lost_or_damaged_database_is_refused_and_gc_deletes_nothing(
    store_with_data: Path, content: bytes
) -> None:
    project = store_with_data
    before = objects_of(project)
    assert before
    db = project / ".lockstep" / "lockstep.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(content)
    for command in (("runs",), ("gc",), ("data", "ls"), ("data", "status"), ("fsck",)):
        result = lockstep(project, *command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert result.stderr.startswith(f"error: {db} is ")
        assert "objects under" in result.stderr and "intact" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == content  # never overwritten
    assert objects_of(project) == before


def test_an_empty_database_in_a_store_without_objects_is_just_a_new_store(
    tmp_path: Path,
) -> None:
    project = tmp_path / "fresh"
    (project / ".lockstep").mkdir(parents=True)
    (project / ".lockstep" / "lockstep.db").write_bytes(b"")
    result = lockstep(project, "runs")
    assert result.returncode == 0, result.stderr


def test_an_unreachable_database_server_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".lockstep").mkdir()
    result = lockstep(
        tmp_path, "runs", env={"LOCKSTEP_DB_URL": "postgresql+psycopg://u:pw@127.0.0.1:1/x"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open the metadata store 127.0.0.1:1/x")
    assert "pw" not in result.stderr and "unexpected" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

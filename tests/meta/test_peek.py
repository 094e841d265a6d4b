"""The plain-sqlite3 look at a dataset version, against a real store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lockstep.meta.peek import peek_latest_versions, peek_version
from lockstep.settings import Settings
from lockstep.workspace import Workspace, default_database


def make_store(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "a.txt").write_text("one")
    workspace = Workspace.open(Settings.from_env(environ={}, cwd=project), create=True)
    data = workspace.data()
    data.add(project / "data", name="train")
    (project / "data" / "a.txt").write_text("two")
    data.add(project / "data", name="train")
    data.records.tag(data.records.resolve("train@v1"), "golden")
    (project / "other.txt").write_text("x")
    data.add(project / "other.txt")
    workspace.close()
    return default_database(workspace.store_dir)


def test_peek_reads_what_the_full_store_says(tmp_path: Path) -> None:
    database = make_store(tmp_path)
    workspace = Workspace.open(Settings.from_env(environ={}, cwd=tmp_path / "project"))
    records = workspace.data().records
    for ref in ("train", "train@latest", "train@v1", "train@v2"):
        peek = peek_version(database, ref)
        full = records.resolve(ref)
        assert peek is not None
        assert (peek.ref, peek.manifest_digest, peek.source_path) == (
            full.ref,
            full.manifest_digest,
            full.source_path,
        )
    latest = peek_latest_versions(database)
    assert latest is not None
    assert [(p.ref, p.manifest_digest) for p in latest] == [
        (v.ref, v.manifest_digest) for v in records.latest_versions()
    ]
    workspace.close()


def test_peek_leaves_to_the_full_path_what_it_cannot_say(tmp_path: Path) -> None:
    database = make_store(tmp_path)
    assert peek_version(database, "train@golden") is None  # tags: the full resolver
    assert peek_version(database, "train@v9") is None
    assert peek_version(database, "nothing") is None
    assert peek_version(tmp_path / "absent.db", "train") is None
    assert not (tmp_path / "absent.db").exists()  # never created by looking
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    assert peek_version(database, "train") is None  # another schema: not guessed at
    assert peek_latest_versions(database) is None

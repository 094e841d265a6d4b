from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from lockstep.errors import StoreError, StoreNeedsMigration, StoreTooNew
from lockstep.meta import migrate
from lockstep.meta.engine import create_engine
from lockstep.meta.revisions import SCHEMA_HEAD
from lockstep.meta.store import MetaStore


def test_new_store_gets_the_head_schema_and_writer_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetaStore.open(url).close()
    engine = create_engine(url)
    assert migrate.current_revision(engine) == SCHEMA_HEAD
    assert migrate.writer_version(engine) is not None
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"
    engine.dispose()


def test_store_from_a_newer_lockstep_is_refused_with_its_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetaStore.open(url).close()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        connection.exec_driver_sql(
            "UPDATE lockstep_info SET value = '7.3.0' WHERE key = 'writer_version'"
        )
    engine.dispose()
    with pytest.raises(StoreTooNew, match=r"lockstep 7\.3\.0.*upgrade lockstep"):
        MetaStore.open(url)


def test_old_store_is_never_migrated_silently(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(migrate._MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")  # a store from the first release
    engine.dispose()
    with pytest.raises(StoreNeedsMigration, match="lockstep migrate"):
        MetaStore.open(url)
    engine = create_engine(url)
    assert migrate.current_revision(engine) == "0001"  # untouched by the refused open
    assert migrate.upgrade(engine) == ("0001", SCHEMA_HEAD)
    engine.dispose()
    MetaStore.open(url).close()


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE runs (x INTEGER)")
    engine.dispose()
    with pytest.raises(StoreError, match="no lockstep schema"):
        MetaStore.open(url)


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate.upgrade(engine) == (None, SCHEMA_HEAD)
    assert migrate.upgrade(engine) == (SCHEMA_HEAD, SCHEMA_HEAD)
    assert sa.inspect(engine).has_table("metric_chunks")
    engine.dispose()

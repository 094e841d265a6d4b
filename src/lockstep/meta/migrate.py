"""Schema versions: read the store's revision cheaply, refuse newer stores, apply migrations."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lockstep import __version__
from lockstep.errors import StoreError, StoreNeedsMigration, StoreTooNew
from lockstep.meta import schema
from lockstep.meta.engine import read_transaction, upsert, write_transaction
from lockstep.meta.revisions import SCHEMA_HEAD, SCHEMA_REVISIONS

_MIGRATIONS = Path(__file__).parent / "migrations"
# An arbitrary constant naming lockstep's migration lock among PostgreSQL advisory locks.
_MIGRATION_LOCK = 0x10C857E9


def current_revision(engine: sa.Engine) -> str | None:
    """The store's Alembic revision, or None for an empty database (no Alembic import)."""
    inspector = sa.inspect(engine)
    if not inspector.has_table("alembic_version"):
        if inspector.has_table("runs"):
            raise StoreError(
                f"{_where(engine)} holds tables but no lockstep schema version; "
                "point lockstep at an empty database or a lockstep store"
            )
        return None
    with read_transaction(engine) as connection:
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return str(rows[0][0]) if rows else None


def writer_version(engine: sa.Engine) -> str | None:
    """The lockstep version that last migrated the store, if recorded."""
    try:
        with read_transaction(engine) as connection:
            row = connection.execute(
                sa.select(schema.info.c.value).where(schema.info.c.key == "writer_version")
            ).first()
    except sa.exc.DBAPIError:
        return None
    return None if row is None else str(row[0])


def check(engine: sa.Engine, *, create: bool) -> None:
    """Make the store usable: migrate a new one, refuse a newer or an older one."""
    revision = current_revision(engine)
    if revision is None:
        if not create:
            raise StoreNeedsMigration(_where(engine), None, SCHEMA_HEAD)
        upgrade(engine)
        return
    if revision == SCHEMA_HEAD:
        return
    if revision not in SCHEMA_REVISIONS:
        raise StoreTooNew(_where(engine), revision, writer_version(engine))
    raise StoreNeedsMigration(_where(engine), revision, SCHEMA_HEAD)


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Apply every pending migration; returns (before, after) revisions."""
    before = current_revision(engine)
    if before is not None and before not in SCHEMA_REVISIONS:
        raise StoreTooNew(_where(engine), before, writer_version(engine))
    if before == SCHEMA_HEAD:
        return before, before
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            # Processes opening a new store at once must not all create the schema;
            # SQLite's immediate transaction already serialises them.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        # Alembic reads the revision again inside the lock, so a lost race is a no-op.
        command.upgrade(config, "head")
        upsert(
            connection,
            schema.info,
            [{"key": "writer_version", "value": __version__}],
            ("key",),
        )
    return before, SCHEMA_HEAD


def _where(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)

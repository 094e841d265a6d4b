"""SQLAlchemy engines tuned per backend: SQLite in WAL with immediate write transactions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from lockstep.errors import StoreError

# Writers wait for each other this long before SQLite reports "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 120_000
_WRITE = "lockstep_write"


def create_engine(url: str) -> sa.Engine:
    """An engine for a metadata URL (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=4)
        except ModuleNotFoundError as exc:
            raise StoreError(
                f"PostgreSQL support needs psycopg ({exc}); install lockstep[postgres]"
            ) from None
    raise StoreError(f"unsupported metadata URL {url!r}; use sqlite:/// or postgresql+psycopg://")


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode never corrupts; a power cut may lose the last commits only.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A deferred transaction that reads and then writes can fail at once with
        # SQLITE_BUSY under WAL; taking the write lock up front makes writers queue
        # on busy_timeout instead.
        if connection.get_execution_options().get(_WRITE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that will write: on SQLite it holds the write lock from the start."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only transaction: one consistent snapshot."""
    with engine.connect() as connection, connection.begin():
        yield connection


def _dialect_insert(connection: sa.Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    return postgresql_insert(table)


def insert_ignore(
    connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]
) -> None:
    """Insert rows, skipping those whose keys already exist."""
    if rows:
        statement = _dialect_insert(connection, table)
        connection.execute(statement.on_conflict_do_nothing(index_elements=list(keys)), rows)


def upsert(
    connection: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    keys: tuple[str, ...],
) -> None:
    """Insert rows, replacing the non-key columns of rows whose keys already exist."""
    if not rows:
        return
    statement = _dialect_insert(connection, table)
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    connection.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=updates), rows
    )

"""SQLAlchemy engines tuned per backend: SQLite in WAL with immediate write transactions."""

from __future__ import annotations

import os
import sqlite3
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


def read_only_path(url: str) -> str | None:
    """The database file of a SQLite URL when it can only be read (its directory is on a
    read-only filesystem or not writable for this user); None otherwise."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    path = parsed.database
    if not os.path.isfile(path):
        return None
    return None if os.access(os.path.dirname(os.path.abspath(path)), os.W_OK) else path


def _sqlite_engine(url: str) -> sa.Engine:
    read_only = read_only_path(url)
    connect_args: dict[str, Any] = {
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        "check_same_thread": False,
    }
    if read_only is not None:
        # Readable where nothing can be written: without a WAL left over the file is
        # complete and immutable (no lock files needed); with one, SQLite reads it in place.
        wal = os.path.exists(read_only + "-wal")
        uri = f"file:{read_only}?mode=ro" + ("" if wal else "&immutable=1")
        connect_args["uri"] = True
        engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, **connect_args))
    else:
        engine = sa.create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if read_only is not None:
            cursor.execute("PRAGMA query_only=ON")
            cursor.close()
            return
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
            if read_only is not None:
                raise StoreError(
                    f"the store at {os.path.dirname(read_only)} is read-only: it can be read, "
                    "not changed (work on a writable copy, or remount it writable)"
                )
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

"""A look at one dataset version in a SQLite store through the standard library.

For ``data status NAME``, whose common answer (nothing moved) should not wait
for SQLAlchemy's import (0.3 s here, most of a 100,000-file status). Read-only,
and only for a store at exactly this lockstep's schema revision; anything
else (another revision, PostgreSQL, a tag or digest reference) returns None and
the caller takes the full path.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lockstep.meta.revisions import SCHEMA_HEAD


@dataclass(frozen=True)
class VersionPeek:
    dataset: str
    number: int
    manifest_digest: str
    source_path: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}@v{self.number}"


def peek_version(database: Path, ref: str) -> VersionPeek | None:
    """``name``, ``name@latest`` or ``name@vN`` in the SQLite file, if it can say."""
    name, _, which = ref.partition("@")
    number = int(which[1:]) if which[:1] == "v" and which[1:].isdigit() else None
    if which not in ("", "latest") and number is None:
        return None
    query = _SELECT + " WHERE d.name = ?"
    if number is None:
        rows = _read(database, query + " ORDER BY v.number DESC LIMIT 1", (name,))
    else:
        rows = _read(database, query + " AND v.number = ?", (name, number))
    return rows[0] if rows else None


def peek_latest_versions(database: Path) -> list[VersionPeek] | None:
    """Every dataset's latest version, by name, if the SQLite file can say."""
    newest = "SELECT dataset_id, MAX(number) FROM dataset_versions GROUP BY dataset_id"
    query = f"{_SELECT} WHERE (v.dataset_id, v.number) IN ({newest}) ORDER BY d.name"
    return _read(database, query, ())


_SELECT = (
    "SELECT d.name, v.number, v.manifest_digest, v.source_path FROM dataset_versions v "
    "JOIN datasets d ON d.id = v.dataset_id"
)


def _read(database: Path, query: str, parameters: tuple[object, ...]) -> list[VersionPeek] | None:
    """Rows of a version query; None unless the store is exactly at this schema."""
    if not database.is_file():
        return None  # connecting would create it
    try:
        connection = sqlite3.connect(database, timeout=5)
    except sqlite3.Error:
        return None
    try:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None or revision[0] != SCHEMA_HEAD:
            return None
        rows = connection.execute(query, parameters).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return [VersionPeek(str(n), int(number), str(m), str(s)) for n, number, m, s in rows]

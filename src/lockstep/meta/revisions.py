"""The schema revisions this lockstep knows, importable without SQLAlchemy."""

from __future__ import annotations

# Alembic revisions, oldest first; the last is the head.
SCHEMA_REVISIONS = ("0001", "0002", "0003", "0004", "0005")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]

"""Model versions in SQL: versions, files, tags, aliases with their history, and run links."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lockstep.errors import ModelNotFound, UsageError
from lockstep.meta import schema
from lockstep.meta.datasets import FileEntry, pick_version, version_files
from lockstep.meta.engine import insert_ignore, read_transaction, upsert, write_transaction

_IN_BATCH = 500


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    id: int
    model: str
    number: int
    manifest_digest: str
    created_at: float
    message: str
    size: int
    file_count: int
    run_id: str | None
    created_by: str
    summary: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}@v{self.number}"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.number,
            "ref": self.ref,
            "manifest": self.manifest_digest,
            "created_at": self.created_at,
            "message": self.message,
            "size": self.size,
            "files": self.file_count,
            "run": self.run_id,
            "created_by": self.created_by,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
            "summary": self.summary,
        }


@dataclass(frozen=True, kw_only=True)
class AliasMove:
    """One move of an alias, as its history keeps it."""

    model: str
    alias: str
    from_number: int | None  # None: the alias was new
    to_number: int | None  # None: the alias was deleted
    at: float
    host: str
    user: str
    note: str
    key: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "from": self.from_number,
            "to": self.to_number,
            "at": self.at,
            "host": self.host,
            "user": self.user,
            "note": self.note,
            "key": self.key,
        }


def _insert_files(connection: sa.Connection, version_id: int, files: Sequence[FileEntry]) -> None:
    if files:
        connection.execute(
            schema.model_files.insert(),
            [
                {
                    "version_id": version_id,
                    "path": f.path,
                    "digest": f.digest,
                    "size": f.size,
                    "mode": f.mode,
                }
                for f in files
            ],
        )


class ModelRecords:
    """All model SQL, on the metadata store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # versions ----------------------------------------------------------------

    def _model_id(self, connection: sa.Connection, name: str, now: float, *, lock: bool) -> int:
        m = schema.models
        insert_ignore(connection, m, [{"name": name, "created_at": now}], ("name",))
        query = sa.select(m.c.id).where(m.c.name == name)
        # The model's row is the lock concurrent writers queue on (SQLite's writers already
        # queue on BEGIN IMMEDIATE; PostgreSQL's on this row).
        return int(connection.execute(query.with_for_update() if lock else query).scalar_one())

    def add_version(
        self,
        *,
        name: str,
        manifest_digest: str,
        files: Sequence[FileEntry],
        message: str,
        run_id: str | None,
        created_by: str,
        summary: dict[str, Any],
    ) -> tuple[ModelVersion, bool]:
        """A new version numbered after the newest, in one transaction: (version, True);
        (the existing version, False) when a version of this name has this content."""
        v = schema.model_versions
        now = time.time()
        with write_transaction(self.engine) as connection:
            model_id = self._model_id(connection, name, now, lock=True)
            same = connection.execute(
                sa.select(v.c.id).where(
                    v.c.model_id == model_id, v.c.manifest_digest == manifest_digest
                )
            ).first()
            if same is not None:
                version_id, created = int(same.id), False
            else:
                newest = connection.execute(
                    sa.select(sa.func.max(v.c.number)).where(v.c.model_id == model_id)
                ).scalar()
                version_id = self._insert(
                    connection,
                    model_id=model_id,
                    number=int(newest or 0) + 1,
                    manifest_digest=manifest_digest,
                    created_at=now,
                    message=message,
                    run_id=run_id,
                    created_by=created_by,
                    summary=summary,
                    files=files,
                )
                created = True
        return self.version_by_id(version_id), created

    def _insert(
        self,
        connection: sa.Connection,
        *,
        model_id: int,
        number: int,
        manifest_digest: str,
        created_at: float,
        message: str,
        run_id: str | None,
        created_by: str,
        summary: dict[str, Any],
        files: Sequence[FileEntry],
    ) -> int:
        result = connection.execute(
            schema.model_versions.insert().values(
                model_id=model_id,
                number=number,
                manifest_digest=manifest_digest,
                created_at=created_at,
                message=message,
                size=sum(f.size for f in files),
                file_count=len(files),
                run_id=run_id,
                created_by=created_by,
                summary_json=json.dumps(summary, sort_keys=True),
            )
        )
        version_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        _insert_files(connection, version_id, files)
        return version_id

    def import_version(
        self,
        *,
        name: str,
        number: int,
        manifest_digest: str,
        created_at: float,
        message: str,
        run_id: str | None,
        created_by: str,
        summary: dict[str, Any],
        files: Sequence[FileEntry],
        tags: dict[str, str],
    ) -> str:
        """Recreate a version under its own number: 'exists', 'conflict' or 'imported'."""
        v = schema.model_versions
        with write_transaction(self.engine) as connection:
            model_id = self._model_id(connection, name, created_at, lock=True)
            here = connection.execute(
                sa.select(v.c.manifest_digest).where(v.c.model_id == model_id, v.c.number == number)
            ).first()
            if here is not None:
                return "exists" if here[0] == manifest_digest else "conflict"
            version_id = self._insert(
                connection,
                model_id=model_id,
                number=number,
                manifest_digest=manifest_digest,
                created_at=created_at,
                message=message,
                run_id=run_id,
                created_by=created_by,
                summary=summary,
                files=files,
            )
            upsert(
                connection,
                schema.model_tags,
                [{"version_id": version_id, "key": k, "value": val} for k, val in tags.items()],
                ("version_id", "key"),
            )
        return "imported"

    def model_names(self) -> list[str]:
        """The models that have at least one version."""
        m, v = schema.models, schema.model_versions
        with read_transaction(self.engine) as connection:
            return [
                r[0]
                for r in connection.execute(
                    sa.select(m.c.name)
                    .where(sa.exists().where(v.c.model_id == m.c.id))
                    .order_by(m.c.name)
                )
            ]

    def _select(self) -> sa.Select[Any]:
        m, v = schema.models, schema.model_versions
        return sa.select(v, m.c.name.label("model")).select_from(v.join(m, m.c.id == v.c.model_id))

    def _versions(self, query: sa.Select[Any]) -> list[ModelVersion]:
        t, a = schema.model_tags, schema.model_aliases
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
            tags: dict[int, dict[str, str]] = {}
            aliases: dict[tuple[int, int], list[str]] = {}
            ids = [r.id for r in rows]
            model_ids = sorted({r.model_id for r in rows})
            for start in range(0, len(ids), _IN_BATCH):
                for tag in connection.execute(
                    sa.select(t).where(t.c.version_id.in_(ids[start : start + _IN_BATCH]))
                ):
                    tags.setdefault(tag.version_id, {})[tag.key] = tag.value
            for start in range(0, len(model_ids), _IN_BATCH):
                for alias in connection.execute(
                    sa.select(a).where(a.c.model_id.in_(model_ids[start : start + _IN_BATCH]))
                ):
                    aliases.setdefault((alias.model_id, alias.number), []).append(alias.alias)
        return [
            ModelVersion(
                id=r.id,
                model=r.model,
                number=r.number,
                manifest_digest=r.manifest_digest,
                created_at=r.created_at,
                message=r.message,
                size=r.size,
                file_count=r.file_count,
                run_id=r.run_id,
                created_by=r.created_by,
                summary=json.loads(r.summary_json or "{}"),
                tags=tags.get(r.id, {}),
                aliases=tuple(sorted(aliases.get((r.model_id, r.number), []))),
            )
            for r in rows
        ]

    def version_by_id(self, version_id: int) -> ModelVersion:
        found = self._versions(self._select().where(schema.model_versions.c.id == version_id))
        if not found:
            raise ModelNotFound(str(version_id))
        return found[0]

    def versions_by_ids(self, ids: Iterable[int]) -> list[ModelVersion]:
        wanted = sorted(set(ids))
        found: list[ModelVersion] = []
        for start in range(0, len(wanted), _IN_BATCH):
            found += self._versions(
                self._select().where(
                    schema.model_versions.c.id.in_(wanted[start : start + _IN_BATCH])
                )
            )
        return found

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        found = self._versions(
            self._select()
            .where(schema.models.c.name == name)
            .order_by(schema.model_versions.c.number)
        )
        if not found:
            raise ModelNotFound(name)
        return found

    def latest_versions(self) -> list[ModelVersion]:
        v = schema.model_versions
        newest = (
            sa.select(v.c.model_id, sa.func.max(v.c.number).label("number"))
            .group_by(v.c.model_id)
            .subquery()
        )
        query = (
            self._select()
            .join(newest, sa.and_(newest.c.model_id == v.c.model_id, newest.c.number == v.c.number))
            .order_by(schema.models.c.name)
        )
        return self._versions(query)

    def resolve(self, ref: str) -> ModelVersion:
        """``NAME``, ``NAME@latest``, ``NAME@vN``, ``NAME@ALIAS`` or ``NAME@<manifest prefix>``."""
        name, _, which = ref.partition("@")
        return pick_version(
            ref, self.versions(name), which, lambda v: v.aliases, ModelNotFound, "an alias"
        )

    def files(self, version_id: int) -> list[FileEntry]:
        return version_files(self.engine, schema.model_files, version_id)

    def set_tag(self, version: ModelVersion, key: str, value: str) -> None:
        with write_transaction(self.engine) as connection:
            upsert(
                connection,
                schema.model_tags,
                [{"version_id": version.id, "key": key, "value": value}],
                ("version_id", "key"),
            )

    def delete_version(self, version: ModelVersion) -> None:
        """Remove a version (its files, tags, run links); refused while an alias points at it."""
        if version.aliases:
            raise UsageError(
                f"{version.ref} is what {', '.join(version.aliases)} points at; move or delete "
                f"the alias first (lockstep models alias {version.model}@vN ALIAS, or --delete)"
            )
        with write_transaction(self.engine) as connection:
            for table in (schema.model_files, schema.model_tags, schema.run_models):
                connection.execute(table.delete().where(table.c.version_id == version.id))
            connection.execute(
                schema.model_versions.delete().where(schema.model_versions.c.id == version.id)
            )

    # aliases -----------------------------------------------------------------

    def move_alias(
        self,
        *,
        name: str,
        alias: str,
        number: int | None,
        host: str,
        user: str,
        note: str = "",
    ) -> AliasMove:
        """Point alias at version number (None: delete it), keeping the move in the history.

        One transaction holding the model's row: two movers queue, and the second's move
        starts from where the first left the alias, so no move is lost from the history.
        """
        m, a = schema.models, schema.model_aliases
        with write_transaction(self.engine) as connection:
            found = connection.execute(
                sa.select(m.c.id).where(m.c.name == name).with_for_update()
            ).first()
            if found is None:
                raise ModelNotFound(name)
            now = time.time()  # once the lock is held: the history's order is the moves' order
            model_id = int(found.id)
            current = connection.execute(
                sa.select(a.c.number).where(a.c.model_id == model_id, a.c.alias == alias)
            ).scalar()
            if number is None and current is None:
                raise ModelNotFound(f"{name}@{alias}", f"{name} has no alias {alias!r}")
            move = AliasMove(
                model=name,
                alias=alias,
                from_number=None if current is None else int(current),
                to_number=number,
                at=now,
                host=host,
                user=user,
                note=note,
                key=secrets.token_hex(16),
            )
            self._write_history(connection, model_id, [move])
            if number is None:
                connection.execute(a.delete().where(a.c.model_id == model_id, a.c.alias == alias))
            else:
                upsert(
                    connection,
                    a,
                    [{"model_id": model_id, "alias": alias, "number": number}],
                    ("model_id", "alias"),
                )
        return move

    @staticmethod
    def _write_history(
        connection: sa.Connection, model_id: int, moves: Sequence[AliasMove]
    ) -> None:
        insert_ignore(
            connection,
            schema.model_alias_history,
            [
                {
                    "model_id": model_id,
                    "alias": mv.alias,
                    "from_number": mv.from_number,
                    "to_number": mv.to_number,
                    "at": mv.at,
                    "host": mv.host,
                    "user": mv.user,
                    "note": mv.note,
                    "entry_key": mv.key,
                }
                for mv in moves
            ],
            ("entry_key",),
        )

    def aliases(self, name: str) -> dict[str, int]:
        m, a = schema.models, schema.model_aliases
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(a.c.alias, a.c.number)
                .select_from(a.join(m, m.c.id == a.c.model_id))
                .where(m.c.name == name)
                .order_by(a.c.alias)
            ).all()
        return {r.alias: int(r.number) for r in rows}

    def all_aliases(self) -> dict[str, dict[str, int]]:
        """model -> alias -> version number, for every model (one query)."""
        m, a = schema.models, schema.model_aliases
        found: dict[str, dict[str, int]] = {}
        with read_transaction(self.engine) as connection:
            for r in connection.execute(
                sa.select(m.c.name, a.c.alias, a.c.number)
                .select_from(a.join(m, m.c.id == a.c.model_id))
                .order_by(m.c.name, a.c.alias)
            ):
                found.setdefault(r.name, {})[r.alias] = int(r.number)
        return found

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """The moves of a model's aliases (or of one), oldest first."""
        m, h = schema.models, schema.model_alias_history
        query = (
            sa.select(h, m.c.name.label("model"))
            .select_from(h.join(m, m.c.id == h.c.model_id))
            .where(m.c.name == name)
            .order_by(h.c.at, h.c.id)
        )
        if alias is not None:
            query = query.where(h.c.alias == alias)
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return [
            AliasMove(
                model=r.model,
                alias=r.alias,
                from_number=r.from_number,
                to_number=r.to_number,
                at=r.at,
                host=r.host,
                user=r.user,
                note=r.note,
                key=r.entry_key,
            )
            for r in rows
        ]

    def merge_alias(
        self, name: str, alias: str, moves: Sequence[AliasMove], pointer: int | None
    ) -> str:
        """Bring in another store's history of one alias and where it points there.

        'current': nothing new; 'updated': the other history extends this one (its moves
        are kept, the alias follows); 'diverged': each has moves the other lacks, and
        nothing here changes (a person decides which move stands).
        """
        m, a = schema.models, schema.model_aliases
        with write_transaction(self.engine) as connection:
            found = connection.execute(
                sa.select(m.c.id).where(m.c.name == name).with_for_update()
            ).first()
            if found is None:
                raise ModelNotFound(name)
            model_id = int(found.id)
            h = schema.model_alias_history
            local = {
                r[0]
                for r in connection.execute(
                    sa.select(h.c.entry_key).where(h.c.model_id == model_id, h.c.alias == alias)
                )
            }
            theirs = {mv.key for mv in moves}
            if theirs <= local:
                return "current"
            if not local <= theirs:
                return "diverged"
            self._write_history(connection, model_id, moves)
            if pointer is None:
                connection.execute(a.delete().where(a.c.model_id == model_id, a.c.alias == alias))
            else:
                upsert(
                    connection,
                    a,
                    [{"model_id": model_id, "alias": alias, "number": pointer}],
                    ("model_id", "alias"),
                )
        return "updated"

    # runs --------------------------------------------------------------------

    def link_run(self, run_id: str, version_id: int, role: str) -> None:
        with write_transaction(self.engine) as connection:
            insert_ignore(
                connection,
                schema.run_models,
                [{"run_id": run_id, "version_id": version_id, "role": role}],
                ("run_id", "version_id", "role"),
            )

    def run_links(self, run_id: str) -> list[tuple[str, int, str]]:
        """(model, version number, role) of every model version a run is linked to."""
        r, v, m = schema.run_models, schema.model_versions, schema.models
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(m.c.name, v.c.number, r.c.role)
                .select_from(r.join(v, v.c.id == r.c.version_id).join(m, m.c.id == v.c.model_id))
                .where(r.c.run_id == run_id)
                .order_by(m.c.name, v.c.number)
            ).all()
        return [(row.name, row.number, row.role) for row in rows]

    def runs_of(self, version_id: int) -> list[tuple[str, str]]:
        r = schema.run_models
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(r.c.run_id, r.c.role)
                .where(r.c.version_id == version_id)
                .order_by(r.c.run_id)
            ).all()
        return [(row.run_id, row.role) for row in rows]

    def versions_containing(self, digests: Sequence[str]) -> dict[str, list[int]]:
        """digest -> ids of the model versions holding a file with that content."""
        f = schema.model_files
        found: dict[str, list[int]] = {}
        with read_transaction(self.engine) as connection:
            for start in range(0, len(digests), _IN_BATCH):
                batch = digests[start : start + _IN_BATCH]
                for row in connection.execute(
                    sa.select(f.c.digest, f.c.version_id).where(f.c.digest.in_(batch))
                ):
                    found.setdefault(row.digest, []).append(row.version_id)
        return found

    def referenced_digests(self) -> set[str]:
        """Every object a model version needs: its manifest and its files."""
        with read_transaction(self.engine) as connection:
            files = connection.execute(sa.select(schema.model_files.c.digest).distinct())
            manifests = connection.execute(
                sa.select(schema.model_versions.c.manifest_digest).distinct()
            )
            return {r[0] for r in files} | {r[0] for r in manifests}

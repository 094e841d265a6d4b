"""Dataset versions in SQL: versions, their files, tags, and links to the runs that used them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from lockstep.errors import DatasetNotFound, UsageError
from lockstep.meta import schema
from lockstep.meta.engine import insert_ignore, read_transaction, upsert, write_transaction

_IN_BATCH = 500


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    path: str  # relative to the dataset root ("" for a single-file dataset)
    digest: str
    size: int
    mode: int


@dataclass(frozen=True, kw_only=True)
class DatasetVersion:
    id: int
    dataset: str
    number: int
    manifest_digest: str
    created_at: float
    message: str
    size: int
    file_count: int
    source_path: str
    kind: str
    tags: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.dataset}@v{self.number}"

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.number,
            "ref": self.ref,
            "manifest": self.manifest_digest,
            "created_at": self.created_at,
            "message": self.message,
            "size": self.size,
            "files": self.file_count,
            "source_path": self.source_path,
            "kind": self.kind,
            "tags": list(self.tags),
        }


def _insert_version(
    connection: sa.Connection,
    *,
    dataset_id: int,
    number: int,
    manifest_digest: str,
    created_at: float,
    message: str,
    source_path: str,
    kind: str,
    files: Sequence[FileEntry],
) -> int:
    """Insert a version row and its file rows; returns the version's id."""
    result = connection.execute(
        schema.dataset_versions.insert().values(
            dataset_id=dataset_id,
            number=number,
            manifest_digest=manifest_digest,
            created_at=created_at,
            message=message,
            size=sum(f.size for f in files),
            file_count=len(files),
            source_path=source_path,
            kind=kind,
        )
    )
    version_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    if files:
        connection.execute(
            schema.dataset_files.insert(),
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
    return version_id


class _Numbered(Protocol):
    @property
    def number(self) -> int: ...

    @property
    def manifest_digest(self) -> str: ...


Version = TypeVar("Version", bound=_Numbered)


def pick_version(
    ref: str,
    versions: Sequence[Version],
    which: str,
    names: Callable[[Version], Iterable[str]],
    missing: Callable[[str, str], Exception],
    named: str,
) -> Version:
    """The version a reference's part after ``@`` picks out of versions (oldest first):
    nothing or ``latest`` (the newest), ``vN``, a name (a tag, an alias) or 4+ characters
    of a manifest digest. Shared by datasets and models."""
    name = ref.partition("@")[0]
    if not which or which == "latest":
        return versions[-1]
    if which[:1] == "v" and which[1:].isdigit():
        for version in versions:
            if version.number == int(which[1:]):
                return version
        raise missing(ref, f"{name} has versions v1 to v{versions[-1].number}")
    for version in versions:
        if which in names(version):
            return version
    if len(which) >= 4:
        matches = [v for v in versions if v.manifest_digest.startswith(which.lower())]
        if len(matches) == 1:
            return matches[0]
    raise missing(ref, f"give vN, latest, {named} or 4+ characters of a manifest digest")


def version_files(engine: sa.Engine, table: sa.Table, version_id: int) -> list[FileEntry]:
    """The file rows of one dataset or model version, by path."""
    with read_transaction(engine) as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.version_id == version_id).order_by(table.c.path)
        ).all()
    return [FileEntry(path=r.path, digest=r.digest, size=r.size, mode=r.mode) for r in rows]


class DatasetRecords:
    """All dataset SQL, on the metadata store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add_version(
        self,
        *,
        name: str,
        manifest_digest: str,
        files: Sequence[FileEntry],
        message: str,
        source_path: str,
        kind: str,
    ) -> tuple[DatasetVersion, bool]:
        """Record a new version (numbered after the newest), its files, in one transaction;
        (version, True). When the newest version already has this manifest (another add of
        the same content won the race), (that version, False) and nothing is written."""
        d, v = schema.datasets, schema.dataset_versions
        now = time.time()
        with write_transaction(self.engine) as connection:
            insert_ignore(connection, d, [{"name": name, "created_at": now}], ("name",))
            # The dataset's row is the lock concurrent adds queue on (SQLite's writers
            # already queue on BEGIN IMMEDIATE; PostgreSQL's on this row).
            dataset_id = connection.execute(
                sa.select(d.c.id).where(d.c.name == name).with_for_update()
            ).scalar_one()
            newest = connection.execute(
                sa.select(v.c.id, v.c.number, v.c.manifest_digest)
                .where(v.c.dataset_id == dataset_id)
                .order_by(v.c.number.desc())
                .limit(1)
            ).first()
            if newest is not None and newest.manifest_digest == manifest_digest:
                existing_id = int(newest.id)
            else:
                existing_id = 0
                number = int(newest.number if newest is not None else 0) + 1
            if existing_id:
                version_id = existing_id
            else:
                version_id = _insert_version(
                    connection,
                    dataset_id=dataset_id,
                    number=number,
                    manifest_digest=manifest_digest,
                    created_at=now,
                    message=message,
                    source_path=source_path,
                    kind=kind,
                    files=files,
                )
        return self.version_by_id(int(version_id)), not existing_id

    def import_version(
        self,
        *,
        name: str,
        number: int,
        manifest_digest: str,
        created_at: float,
        message: str,
        source_path: str,
        kind: str,
        files: Sequence[FileEntry],
        tags: Sequence[str],
    ) -> str:
        """Recreate a version under its own number; 'exists', 'conflict' or 'imported'."""
        d, v, t = schema.datasets, schema.dataset_versions, schema.dataset_tags
        with write_transaction(self.engine) as connection:
            insert_ignore(connection, d, [{"name": name, "created_at": created_at}], ("name",))
            dataset_id = connection.execute(sa.select(d.c.id).where(d.c.name == name)).scalar_one()
            here = connection.execute(
                sa.select(v.c.manifest_digest).where(
                    v.c.dataset_id == dataset_id, v.c.number == number
                )
            ).first()
            if here is not None:
                return "exists" if here[0] == manifest_digest else "conflict"
            version_id = _insert_version(
                connection,
                dataset_id=dataset_id,
                number=number,
                manifest_digest=manifest_digest,
                created_at=created_at,
                message=message,
                source_path=source_path,
                kind=kind,
                files=files,
            )
            for tag in tags:
                upsert(
                    connection,
                    t,
                    [{"dataset_id": dataset_id, "tag": tag, "version_id": version_id}],
                    ("dataset_id", "tag"),
                )
        return "imported"

    def dataset_names(self) -> list[str]:
        with read_transaction(self.engine) as connection:
            return [
                r[0]
                for r in connection.execute(
                    sa.select(schema.datasets.c.name).order_by(schema.datasets.c.name)
                )
            ]

    def run_links(self, run_id: str) -> list[tuple[str, int, str]]:
        """(dataset, version number, role) of every dataset version linked to a run."""
        r, v, d = schema.run_datasets, schema.dataset_versions, schema.datasets
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(d.c.name, v.c.number, r.c.role)
                .select_from(r.join(v, v.c.id == r.c.version_id).join(d, d.c.id == v.c.dataset_id))
                .where(r.c.run_id == run_id)
            ).all()
        return [(row.name, row.number, row.role) for row in rows]

    def _select(self) -> sa.Select[Any]:
        d, v = schema.datasets, schema.dataset_versions
        return sa.select(v, d.c.name.label("dataset")).select_from(
            v.join(d, d.c.id == v.c.dataset_id)
        )

    def _versions(self, query: sa.Select[Any]) -> list[DatasetVersion]:
        t = schema.dataset_tags
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
            tags: dict[int, list[str]] = {}
            ids = [r.id for r in rows]
            for start in range(0, len(ids), _IN_BATCH):
                for tag in connection.execute(
                    sa.select(t.c.version_id, t.c.tag).where(
                        t.c.version_id.in_(ids[start : start + _IN_BATCH])
                    )
                ):
                    tags.setdefault(tag.version_id, []).append(tag.tag)
        return [
            DatasetVersion(
                id=r.id,
                dataset=r.dataset,
                number=r.number,
                manifest_digest=r.manifest_digest,
                created_at=r.created_at,
                message=r.message,
                size=r.size,
                file_count=r.file_count,
                source_path=r.source_path,
                kind=r.kind,
                tags=tuple(sorted(tags.get(r.id, []))),
            )
            for r in rows
        ]

    def version_by_id(self, version_id: int) -> DatasetVersion:
        found = self._versions(self._select().where(schema.dataset_versions.c.id == version_id))
        if not found:
            raise DatasetNotFound(str(version_id))
        return found[0]

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of a dataset, oldest first."""
        found = self._versions(
            self._select()
            .where(schema.datasets.c.name == name)
            .order_by(schema.dataset_versions.c.number)
        )
        if not found:
            raise DatasetNotFound(name)
        return found

    def latest_versions(self) -> list[DatasetVersion]:
        v = schema.dataset_versions
        newest = (
            sa.select(v.c.dataset_id, sa.func.max(v.c.number).label("number"))
            .group_by(v.c.dataset_id)
            .subquery()
        )
        query = (
            self._select()
            .join(
                newest,
                sa.and_(newest.c.dataset_id == v.c.dataset_id, newest.c.number == v.c.number),
            )
            .order_by(schema.datasets.c.name)
        )
        return self._versions(query)

    def resolve(self, ref: str) -> DatasetVersion:
        """``name@v3``, ``name@latest``, ``name@<tag>``, ``name@<manifest digest prefix>``,
        or a bare name (the latest version)."""
        name, _, which = ref.partition("@")
        return pick_version(
            ref, self.versions(name), which, lambda v: v.tags, DatasetNotFound, "a tag"
        )

    def files(self, version_id: int) -> list[FileEntry]:
        return version_files(self.engine, schema.dataset_files, version_id)

    def tag(self, version: DatasetVersion, tag: str) -> None:
        from lockstep.core import validate

        validate.name(tag, "tag")
        if tag == "latest" or (tag[:1] == "v" and tag[1:].isdigit()):
            raise UsageError(f"{tag!r} cannot be a tag: it reads as a version reference")
        d, t = schema.datasets, schema.dataset_tags
        with write_transaction(self.engine) as connection:
            dataset_id = connection.execute(
                sa.select(d.c.id).where(d.c.name == version.dataset)
            ).scalar_one()
            upsert(
                connection,
                t,
                [{"dataset_id": dataset_id, "tag": tag, "version_id": version.id}],
                ("dataset_id", "tag"),
            )

    def delete_version(self, version: DatasetVersion) -> None:
        with write_transaction(self.engine) as connection:
            for table, column in (
                (schema.dataset_files, "version_id"),
                (schema.dataset_tags, "version_id"),
                (schema.run_datasets, "version_id"),
            ):
                connection.execute(table.delete().where(table.c[column] == version.id))
            connection.execute(
                schema.dataset_versions.delete().where(schema.dataset_versions.c.id == version.id)
            )

    def link_run(self, run_id: str, version_id: int, role: str) -> None:
        with write_transaction(self.engine) as connection:
            insert_ignore(
                connection,
                schema.run_datasets,
                [{"run_id": run_id, "version_id": version_id, "role": role}],
                ("run_id", "version_id", "role"),
            )

    def runs_of(self, version_id: int) -> list[tuple[str, str]]:
        r = schema.run_datasets
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(r.c.run_id, r.c.role)
                .where(r.c.version_id == version_id)
                .order_by(r.c.run_id)
            ).all()
        return [(row.run_id, row.role) for row in rows]

    def versions_containing(self, digests: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
        """digest -> [(version id, path in the version)] for the versions that hold it."""
        f = schema.dataset_files
        found: dict[str, list[tuple[int, str]]] = {}
        with read_transaction(self.engine) as connection:
            for start in range(0, len(digests), _IN_BATCH):
                batch = digests[start : start + _IN_BATCH]
                query = sa.select(f.c.digest, f.c.version_id, f.c.path).where(f.c.digest.in_(batch))
                for row in connection.execute(query):
                    found.setdefault(row.digest, []).append((row.version_id, row.path))
        return found

    def referenced_digests(self) -> set[str]:
        """Every object a dataset version needs: its manifest and its files."""
        with read_transaction(self.engine) as connection:
            files = connection.execute(sa.select(schema.dataset_files.c.digest).distinct())
            manifests = connection.execute(
                sa.select(schema.dataset_versions.c.manifest_digest).distinct()
            )
            return {r[0] for r in files} | {r[0] for r in manifests}

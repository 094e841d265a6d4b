"""What MLflow's API keeps beyond lockstep's records, in SQL: experiment lifecycle and
tags, run lifecycle and dataset inputs, the artifact proxy's files, logged models, and the
registry's descriptions, tags, sources and stages."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lockstep.meta import schema
from lockstep.meta.engine import insert_ignore, read_transaction, upsert, write_transaction

_IN_BATCH = 500


@dataclass(frozen=True, kw_only=True)
class ExperimentRow:
    id: int
    name: str
    created_at: float
    lifecycle_stage: str
    last_update_time: float
    tags: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class FileRow:
    path: str
    digest: str
    size: int


def _batches(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _IN_BATCH):
        yield items[start : start + _IN_BATCH]


class MlflowRecords:
    """The MLflow-only rows of one metadata store."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # experiments ---------------------------------------------------------------

    def _experiment_query(self) -> sa.Select[Any]:
        e, m = schema.experiments, schema.mlflow_experiments
        return sa.select(
            e.c.id,
            e.c.name,
            e.c.created_at,
            m.c.lifecycle_stage,
            m.c.last_update_time,
            m.c.tags_json,
        ).select_from(e.outerjoin(m, m.c.experiment_id == e.c.id))

    @staticmethod
    def _experiment(row: Any) -> ExperimentRow:
        return ExperimentRow(
            id=int(row.id),
            name=row.name,
            created_at=row.created_at,
            lifecycle_stage=row.lifecycle_stage or "active",
            last_update_time=row.last_update_time or row.created_at,
            tags=json.loads(row.tags_json or "{}"),
        )

    def experiments(self, *, stages: Sequence[str] | None = None) -> list[ExperimentRow]:
        query = self._experiment_query().order_by(schema.experiments.c.id)
        with read_transaction(self.engine) as connection:
            rows = [self._experiment(r) for r in connection.execute(query)]
        return [r for r in rows if stages is None or r.lifecycle_stage in stages]

    def experiment(self, *, id: int | None = None, name: str | None = None) -> ExperimentRow | None:
        e = schema.experiments
        query = self._experiment_query().where(e.c.id == id if id is not None else e.c.name == name)
        with read_transaction(self.engine) as connection:
            row = connection.execute(query).first()
        return None if row is None else self._experiment(row)

    def create_experiment(self, name: str, tags: Mapping[str, str], now: float) -> tuple[int, bool]:
        """(id, created): an existing name is returned with created False."""
        with write_transaction(self.engine) as connection:
            experiment_id, created = _named_row(connection, schema.experiments, name, now)
            if not created:
                return experiment_id, False
            connection.execute(
                schema.mlflow_experiments.insert().values(
                    experiment_id=experiment_id,
                    lifecycle_stage="active",
                    last_update_time=now,
                    tags_json=json.dumps(dict(tags)),
                )
            )
        return experiment_id, True

    def update_experiment(
        self,
        experiment_id: int,
        *,
        name: str | None = None,
        stage: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        delete_tag: str | None = None,
    ) -> None:
        e, m = schema.experiments, schema.mlflow_experiments
        now = time.time()
        with write_transaction(self.engine) as connection:
            if name is not None:
                connection.execute(e.update().where(e.c.id == experiment_id).values(name=name))
            values: dict[str, Any] = {"last_update_time": now}
            if stage is not None:
                values["lifecycle_stage"] = stage
            _update_tagged(
                connection,
                m.c.experiment_id,
                experiment_id,
                {"last_update_time": now, "tags_json": "{}"},
                values,
                set_tags,
                delete_tag,
            )

    def name_taken(self, name: str) -> bool:
        e = schema.experiments
        with read_transaction(self.engine) as connection:
            return connection.execute(sa.select(e.c.id).where(e.c.name == name)).first() is not None

    # runs ----------------------------------------------------------------------

    def run_stage(self, run_id: str, connection: sa.Connection | None = None) -> str | None:
        """The run's lifecycle stage in one query (in connection's transaction, when given);
        None when there is no such run (what a metric write needs to know, without loading
        the run)."""
        if connection is None:
            with read_transaction(self.engine) as reading:
                return self.run_stage(run_id, reading)
        row = connection.execute(_run_stage_query(), {"run_id": run_id}).first()
        return None if row is None else (row.lifecycle_stage or "active")

    def run_stages(self, run_ids: Sequence[str]) -> dict[str, str]:
        """run id -> lifecycle stage, for those not active."""
        m = schema.mlflow_runs
        found: dict[str, str] = {}
        with read_transaction(self.engine) as connection:
            for batch in _batches(list(run_ids)):
                for r in connection.execute(
                    sa.select(m.c.run_id, m.c.lifecycle_stage).where(m.c.run_id.in_(batch))
                ):
                    found[r.run_id] = r.lifecycle_stage
        return found

    def set_run_stage(self, run_id: str, stage: str) -> None:
        upsert_rows(
            self.engine,
            schema.mlflow_runs,
            [
                {
                    "run_id": run_id,
                    "lifecycle_stage": stage,
                    "deleted_at": time.time() if stage == "deleted" else None,
                }
            ],
            ("run_id",),
        )

    @staticmethod
    def stage_condition(stages: Sequence[str]) -> Any:
        """A condition over runs: the run's lifecycle stage is one of stages."""
        m, r = schema.mlflow_runs, schema.runs
        deleted = sa.exists().where(m.c.run_id == r.c.id, m.c.lifecycle_stage == "deleted")
        if set(stages) >= {"active", "deleted"}:
            return sa.true()
        return deleted if "deleted" in stages else sa.not_(deleted)

    @staticmethod
    def dataset_condition(field: str, op: str, values: Sequence[Any]) -> Any:
        """A condition over runs: one of the run's dataset inputs matches."""
        from lockstep.meta.search import _apply

        i, r = schema.mlflow_run_inputs, schema.runs
        base = i.c.run_id == r.c.id
        if op == "isnull":
            return sa.not_(sa.exists().where(base))
        if op == "notnull":
            return sa.exists().where(base)
        if op == "notin":
            return sa.exists().where(base, sa.not_(i.c[field].in_(list(values))))
        return sa.exists().where(base, _apply(i.c[field], op, tuple(str(v) for v in values)))

    def add_inputs(self, run_id: str, inputs: Sequence[Mapping[str, Any]]) -> None:
        rows = [
            {
                "run_id": run_id,
                "name": str(item["name"]),
                "digest": str(item["digest"]),
                "context": str(item.get("context", "")),
                "doc_json": json.dumps(item["doc"]),
            }
            for item in inputs
        ]
        upsert_rows(
            self.engine, schema.mlflow_run_inputs, rows, ("run_id", "name", "digest", "context")
        )

    def inputs(self, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        i = schema.mlflow_run_inputs
        found: dict[str, list[dict[str, Any]]] = {}
        with read_transaction(self.engine) as connection:
            for batch in _batches(list(run_ids)):
                for r in connection.execute(
                    sa.select(i.c.run_id, i.c.doc_json).where(i.c.run_id.in_(batch))
                ):
                    found.setdefault(r.run_id, []).append(json.loads(r.doc_json))
        return found

    def set_experiment_of_run(self, run_id: str, experiment_id: int) -> None:
        r = schema.runs
        with write_transaction(self.engine) as connection:
            connection.execute(
                r.update().where(r.c.id == run_id).values(experiment_id=experiment_id)
            )

    def rename_run(self, run_id: str, name: str) -> None:
        r = schema.runs
        with write_transaction(self.engine) as connection:
            connection.execute(r.update().where(r.c.id == run_id).values(name=name))

    def set_run_status(self, run_id: str, status: str, end_time: float | None) -> None:
        r = schema.runs
        with write_transaction(self.engine) as connection:
            connection.execute(
                r.update().where(r.c.id == run_id).values(status=status, end_time=end_time)
            )

    # files behind the artifact proxy ---------------------------------------------

    def put_file(self, path: str, digest: str, size: int) -> None:
        upsert_rows(
            self.engine,
            schema.mlflow_files,
            [{"path": path, "digest": digest, "size": size}],
            ("path",),
        )

    def file(self, path: str) -> FileRow | None:
        f = schema.mlflow_files
        with read_transaction(self.engine) as connection:
            row = connection.execute(sa.select(f).where(f.c.path == path)).first()
        return None if row is None else FileRow(path=row.path, digest=row.digest, size=row.size)

    def files_under(self, prefix: str) -> list[FileRow]:
        """Every file whose path starts with prefix + '/' (prefix '' for all), by path."""
        f = schema.mlflow_files
        query = sa.select(f).order_by(f.c.path)
        if prefix:
            start = prefix.rstrip("/") + "/"
            # A prefix compare, not LIKE: paths may hold % and _.
            query = query.where(sa.func.substr(f.c.path, 1, len(start)) == start)
        with read_transaction(self.engine) as connection:
            return [
                FileRow(path=r.path, digest=r.digest, size=r.size)
                for r in connection.execute(query)
            ]

    def delete_files(self, path: str) -> int:
        """Delete the file at path, or every file under it; returns how many."""
        f = schema.mlflow_files
        start = path.rstrip("/") + "/"
        with write_transaction(self.engine) as connection:
            result = connection.execute(
                f.delete().where(
                    sa.or_(f.c.path == path, sa.func.substr(f.c.path, 1, len(start)) == start)
                )
            )
        return int(result.rowcount or 0)

    # logged models ---------------------------------------------------------------

    def put_logged_model(
        self,
        *,
        model_id: str,
        experiment_id: int,
        name: str,
        source_run_id: str | None,
        creation_time: float,
        doc: Mapping[str, Any],
    ) -> None:
        upsert_rows(
            self.engine,
            schema.logged_models,
            [
                {
                    "id": model_id,
                    "experiment_id": experiment_id,
                    "name": name,
                    "source_run_id": source_run_id,
                    "creation_time": creation_time,
                    "doc_json": json.dumps(doc),
                }
            ],
            ("id",),
        )

    def logged_model(self, model_id: str) -> dict[str, Any] | None:
        lm = schema.logged_models
        with read_transaction(self.engine) as connection:
            row = connection.execute(sa.select(lm.c.doc_json).where(lm.c.id == model_id)).first()
        return None if row is None else dict(json.loads(row.doc_json))

    def logged_models(self, experiment_ids: Sequence[int]) -> list[dict[str, Any]]:
        lm = schema.logged_models
        query = sa.select(lm.c.doc_json).order_by(lm.c.creation_time.desc(), lm.c.id)
        if experiment_ids:
            query = query.where(lm.c.experiment_id.in_(list(experiment_ids)))
        with read_transaction(self.engine) as connection:
            return [dict(json.loads(r.doc_json)) for r in connection.execute(query)]

    def delete_logged_model(self, model_id: str) -> None:
        lm = schema.logged_models
        with write_transaction(self.engine) as connection:
            connection.execute(lm.delete().where(lm.c.id == model_id))

    # the registry ------------------------------------------------------------------

    def registered(self, model_ids: Sequence[int]) -> dict[int, tuple[str, dict[str, str], float]]:
        """model id -> (description, tags, last updated) for those that have them."""
        m = schema.mlflow_registered_models
        with read_transaction(self.engine) as connection:
            rows = connection.execute(sa.select(m).where(m.c.model_id.in_(list(model_ids)))).all()
        return {r.model_id: (r.description, json.loads(r.tags_json), r.last_updated) for r in rows}

    def create_model(self, name: str, now: float) -> tuple[int, bool]:
        """(id, created) of the lockstep model named name."""
        with write_transaction(self.engine) as connection:
            return _named_row(connection, schema.models, name, now)

    def model_ids(self, names: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """name -> (id, created_at) of the lockstep models (all, or those named)."""
        m = schema.models
        query = sa.select(m.c.id, m.c.name, m.c.created_at).order_by(m.c.name)
        if names is not None:
            query = query.where(m.c.name.in_(list(names)))
        with read_transaction(self.engine) as connection:
            return {r.name: (int(r.id), r.created_at) for r in connection.execute(query)}

    def update_registered(
        self,
        model_id: int,
        *,
        description: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        delete_tag: str | None = None,
    ) -> None:
        m = schema.mlflow_registered_models
        now = time.time()
        with write_transaction(self.engine) as connection:
            values: dict[str, Any] = {"last_updated": now}
            if description is not None:
                values["description"] = description
            _update_tagged(
                connection,
                m.c.model_id,
                model_id,
                {"description": "", "tags_json": "{}", "last_updated": now},
                values,
                set_tags,
                delete_tag,
            )

    def rename_model(self, model_id: int, name: str) -> None:
        m = schema.models
        with write_transaction(self.engine) as connection:
            connection.execute(m.update().where(m.c.id == model_id).values(name=name))

    def delete_model(self, model_id: int) -> None:
        """A model with every version, file, tag, alias and run link."""
        s = schema
        with write_transaction(self.engine) as connection:
            versions = list(
                connection.execute(
                    sa.select(s.model_versions.c.id).where(s.model_versions.c.model_id == model_id)
                ).scalars()
            )
            for table in (s.model_files, s.model_tags, s.run_models, s.mlflow_model_versions):
                connection.execute(table.delete().where(table.c.version_id.in_(versions)))
            for table in (
                s.model_versions,
                s.model_aliases,
                s.model_alias_history,
                s.mlflow_registered_models,
            ):
                connection.execute(table.delete().where(table.c.model_id == model_id))
            connection.execute(s.models.delete().where(s.models.c.id == model_id))

    def version_extras(self, version_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        v = schema.mlflow_model_versions
        with read_transaction(self.engine) as connection:
            rows = connection.execute(sa.select(v).where(v.c.version_id.in_(list(version_ids))))
            return {
                r.version_id: {
                    "source": r.source,
                    "model_id": r.logged_model_id,
                    "stage": r.stage,
                    "last_updated": r.last_updated,
                }
                for r in rows
            }

    def set_version_extras(
        self, version_id: int, *, source: str, model_id: str | None, stage: str | None = None
    ) -> None:
        row: dict[str, Any] = {
            "version_id": version_id,
            "source": source,
            "logged_model_id": model_id,
            "last_updated": time.time(),
        }
        if stage is not None:
            row["stage"] = stage
        upsert_rows(self.engine, schema.mlflow_model_versions, [row], ("version_id",))

    def set_version_message(self, version_id: int, message: str) -> None:
        v = schema.model_versions
        with write_transaction(self.engine) as connection:
            connection.execute(v.update().where(v.c.id == version_id).values(message=message))

    def delete_version_tag(self, version_id: int, key: str) -> None:
        t = schema.model_tags
        with write_transaction(self.engine) as connection:
            connection.execute(t.delete().where(t.c.version_id == version_id, t.c.key == key))


def _named_row(
    connection: sa.Connection, table: sa.Table, name: str, now: float
) -> tuple[int, bool]:
    """(id, created) of the row named name in a table of named things (experiments,
    models), made if new."""
    existing = connection.execute(sa.select(table.c.id).where(table.c.name == name)).first()
    if existing is not None:
        return int(existing.id), False
    result = connection.execute(table.insert().values(name=name, created_at=now))
    return int(result.inserted_primary_key[0]), True  # type: ignore[index]


def _update_tagged(
    connection: sa.Connection,
    key: sa.Column[Any],
    value: int,
    defaults: dict[str, Any],
    values: dict[str, Any],
    set_tags: Mapping[str, str] | None,
    delete_tag: str | None,
) -> None:
    """Update the row of a table with a tags_json column (made with defaults if missing):
    values, and its tags with set_tags set and delete_tag removed."""
    table = key.table
    insert_ignore(connection, table, [{key.name: value, **defaults}], (key.name,))
    row = connection.execute(sa.select(table.c.tags_json).where(key == value)).one()
    tags = json.loads(row.tags_json)
    tags.update(set_tags or {})
    if delete_tag is not None:
        tags.pop(delete_tag, None)
    connection.execute(
        table.update().where(key == value).values({**values, "tags_json": json.dumps(tags)})
    )


@functools.cache
def _run_stage_query() -> Any:
    """Built once: every metric an MLflow client logs asks it."""
    r, m = schema.runs, schema.mlflow_runs
    return (
        sa.select(r.c.id, m.c.lifecycle_stage)
        .select_from(r.outerjoin(m, m.c.run_id == r.c.id))
        .where(r.c.id == sa.bindparam("run_id"))
    )


def upsert_rows(
    engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]
) -> None:
    with write_transaction(engine) as connection:
        upsert(connection, table, rows, keys)

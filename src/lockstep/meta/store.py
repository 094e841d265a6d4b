"""The metadata store: experiments, runs and everything attached to them, in SQL."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lockstep.core import params as params_codec
from lockstep.core.ids import ID_LENGTH, looks_like_id_prefix
from lockstep.core.query import Node, SortKey
from lockstep.core.records import Artifact, Experiment, MetricSummary, RunRecord
from lockstep.core.status import RunStatus
from lockstep.errors import AmbiguousRunRef, InvalidRunRef, RunNotFound, RunStateError
from lockstep.meta import aggregate, migrate, schema, search
from lockstep.meta.engine import (
    create_engine,
    insert_ignore,
    read_transaction,
    upsert,
    write_transaction,
)
from lockstep.meta.shapes import LiveRun, MetricColumns, StoredChunks

MIN_PREFIX = 4
_IN_BATCH = 500  # ids per IN (...) list; far below every backend's parameter limit


def _null_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def _nan_null(value: float | None) -> float:
    return math.nan if value is None else float(value)


def summary_json(summary: MetricSummary) -> str:
    """The exact JSON text of a summary (NaN and infinities as Python's json spells them)."""
    return json.dumps(
        [summary.last, summary.last_step, summary.min, summary.max, summary.count],
        allow_nan=True,
    )


# Compaction merges a series into chunks of at most this many points (24 MiB per chunk).
COMPACT_CHUNK_POINTS = 1 << 20


def merge_chunks(
    key: str, steps: list[bytes], values: list[bytes], times: list[bytes]
) -> list[MetricColumns]:
    """Concatenate raw little-endian chunks into pieces of at most COMPACT_CHUNK_POINTS."""
    step_bytes, value_bytes, time_bytes = b"".join(steps), b"".join(values), b"".join(times)
    total = len(step_bytes) // 8
    merged = []
    for start in range(0, total, COMPACT_CHUNK_POINTS):
        stop = min(total, start + COMPACT_CHUNK_POINTS)
        piece = step_bytes[start * 8 : stop * 8]
        merged.append(
            MetricColumns(
                key=key,
                steps=piece,
                values=value_bytes[start * 8 : stop * 8],
                times=time_bytes[start * 8 : stop * 8],
                count=stop - start,
                first_step=int.from_bytes(piece[:8], "little", signed=True),
                last_step=int.from_bytes(piece[-8:], "little", signed=True),
            )
        )
    return merged


def _batches(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _IN_BATCH):
        yield items[start : start + _IN_BATCH]


class MetaStore:
    """All SQL the rest of lockstep needs, behind plain methods."""

    def __init__(self, engine: sa.Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        # A store on a read-only filesystem: everything reads, nothing writes (and
        # housekeeping such as reaping dead runs is left for a writable open).
        self.read_only = read_only

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> MetaStore:
        """Open the store at url; a new database gets the schema, an old one must migrate."""
        from lockstep.meta.engine import read_only_path

        engine = create_engine(url)
        read_only = read_only_path(url) is not None
        migrate.check(engine, create=create and not read_only)
        return cls(engine, read_only=read_only)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def location(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # experiments ---------------------------------------------------------

    def experiment_id(self, connection: sa.Connection, name: str, now: float) -> int:
        """The id of the named experiment, created if new (safe against concurrent creators)."""
        table = schema.experiments
        insert_ignore(connection, table, [{"name": name, "created_at": now}], ("name",))
        return int(
            connection.execute(sa.select(table.c.id).where(table.c.name == name)).scalar_one()
        )

    def experiments(self) -> list[Experiment]:
        table = schema.experiments
        with read_transaction(self.engine) as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.name)).all()
        return [Experiment(id=r.id, name=r.name, created_at=r.created_at) for r in rows]

    # runs ------------------------------------------------------------------

    def create_run(
        self,
        *,
        run_id: str,
        name: str,
        experiment: str,
        start_time: float,
        host: str,
        pid: int,
        pid_start: float | None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        note: str = "",
    ) -> None:
        with write_transaction(self.engine) as connection:
            experiment_id = self.experiment_id(connection, experiment, start_time)
            connection.execute(
                schema.runs.insert().values(
                    id=run_id,
                    name=name,
                    experiment_id=experiment_id,
                    status=str(RunStatus.RUNNING),
                    start_time=start_time,
                    end_time=None,
                    host=host,
                    pid=pid,
                    pid_start=pid_start,
                    heartbeat_at=start_time,
                    note=note,
                )
            )
            self._write_params(connection, run_id, params or {})
            self._write_tags(connection, run_id, tags or {})

    def _write_params(
        self, connection: sa.Connection, run_id: str, params: Mapping[str, Any]
    ) -> None:
        rows = []
        for key, value in params_codec.flatten(params).items():
            encoded = params_codec.encode(key, value)
            rows.append(
                {
                    "run_id": run_id,
                    "key": encoded.key,
                    "value_json": encoded.value_json,
                    "value_type": encoded.value_type,
                    "value_num": encoded.value_num,
                    "value_text": value if isinstance(value, str) else encoded.value_json,
                }
            )
        upsert(connection, schema.params, rows, ("run_id", "key"))

    def _write_tags(self, connection: sa.Connection, run_id: str, tags: Mapping[str, Any]) -> None:
        rows = [{"run_id": run_id, "key": str(k), "value": str(v)} for k, v in tags.items()]
        upsert(connection, schema.tags, rows, ("run_id", "key"))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        with write_transaction(self.engine) as connection:
            self._write_params(connection, run_id, params)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        with write_transaction(self.engine) as connection:
            self._write_tags(connection, run_id, tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        table = schema.tags
        with write_transaction(self.engine) as connection:
            connection.execute(table.delete().where(table.c.run_id == run_id, table.c.key == key))

    def set_note(self, run_id: str, note: str) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                schema.runs.update().where(schema.runs.c.id == run_id).values(note=note)
            )

    def set_sections(self, run_id: str, sections: Mapping[str, Any]) -> None:
        """Store open-ended JSON sections (command, seed, code, ...) of a run."""
        rows = [
            {"run_id": run_id, "name": name, "value_json": json.dumps(value, sort_keys=True)}
            for name, value in sections.items()
        ]
        with write_transaction(self.engine) as connection:
            upsert(connection, schema.run_sections, rows, ("run_id", "name"))

    def add_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        rows = [
            {"run_id": run_id, "path": a.path, "digest": a.digest, "size": a.size, "kind": a.kind}
            for a in artifacts
        ]
        with write_transaction(self.engine) as connection:
            upsert(connection, schema.artifacts, rows, ("run_id", "path"))

    def recorded_outputs(self, paths: Sequence[str]) -> set[tuple[str, str]]:
        """(path, digest) pairs among paths that some run recorded as an output."""
        a = schema.artifacts
        found: set[tuple[str, str]] = set()
        with read_transaction(self.engine) as connection:
            for batch in _batches(list(paths)):
                rows = connection.execute(
                    sa.select(a.c.path, a.c.digest).where(a.c.path.in_(batch), a.c.kind == "output")
                )
                found.update((r.path, r.digest) for r in rows)
        return found

    def referenced_digests(self) -> set[str]:
        """Every object a run needs: artifacts, inputs, outputs, and the digests its
        sections name (code files, the diff, logs, lock files)."""
        from lockstep.core.records import digests_named_in

        found: set[str] = set()
        with read_transaction(self.engine) as connection:
            found.update(
                r[0] for r in connection.execute(sa.select(schema.artifacts.c.digest).distinct())
            )
            found.update(
                r[0] for r in connection.execute(sa.select(schema.mlflow_files.c.digest).distinct())
            )
            for row in connection.execute(sa.select(schema.run_sections.c.value_json)):
                found |= digests_named_in(json.loads(row[0]))
        return found

    def export_run(self, run_id: str) -> dict[str, Any]:
        """Everything stored about a run as one JSON document (metric chunks in base64)."""
        import base64

        record = self.get_run(run_id)
        chunks = schema.metric_chunks
        metrics: dict[str, Any] = {}
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(chunks)
                .where(chunks.c.run_id == run_id)
                .order_by(chunks.c.key, chunks.c.seq)
            ).all()
        for row in rows:
            metrics.setdefault(row.key, []).append(
                {
                    "steps": base64.b64encode(row.steps).decode(),
                    "values": base64.b64encode(row.vals).decode(),
                    "times": base64.b64encode(row.times).decode(),
                    "count": row.count,
                    "first_step": row.first_step,
                    "last_step": row.last_step,
                }
            )
        return {
            "schema_version": record.schema_version,
            "id": record.id,
            "name": record.name,
            "experiment": record.experiment,
            "status": str(record.status),
            "start_time": record.start_time,
            "end_time": record.end_time,
            "host": record.host,
            "pid": record.pid,
            "note": record.note,
            "error": record.error,
            "params": record.params,
            "tags": record.tags,
            "artifacts": [
                {"path": a.path, "digest": a.digest, "size": a.size, "kind": a.kind}
                for a in record.artifacts
            ],
            "sections": record.sections,
            "summaries": {k: summary_json(s) for k, s in record.metrics.items()},
            "metric_chunks": metrics,
        }

    def has_run(self, run_id: str) -> bool:
        with read_transaction(self.engine) as connection:
            return (
                connection.execute(
                    sa.select(schema.runs.c.id).where(schema.runs.c.id == run_id)
                ).first()
                is not None
            )

    def import_run(self, doc: Mapping[str, Any]) -> str:
        """Recreate a run exported by export_run (same id): 'imported', 'updated' (it was
        here from another host still running, or taken for crashed, and has ended there
        since) or 'exists'."""
        import base64

        outcome = "imported"
        if self.has_run(doc["id"]):
            here = self.get_run(doc["id"])
            there = RunStatus(doc["status"])
            stale = not here.status.is_final or (
                here.status is RunStatus.CRASHED and there is not RunStatus.CRASHED
            )
            if not (there.is_final and stale and not _alive_here(here.host, here.pid)):
                return "exists"
            self.delete_run(doc["id"])
            outcome = "updated"
        self.create_run(
            run_id=doc["id"],
            name=doc["name"],
            experiment=doc["experiment"],
            start_time=doc["start_time"],
            host=doc["host"],
            pid=doc["pid"],
            pid_start=None,
            params=doc["params"],
            tags=doc["tags"],
            note=doc.get("note", ""),
        )
        self.add_artifacts(doc["id"], [Artifact(**a) for a in doc["artifacts"]])
        if doc["sections"]:
            self.set_sections(doc["id"], doc["sections"])
        columns, seqs = [], {}
        for key, chunk_list in doc["metric_chunks"].items():
            for seq, chunk in enumerate(chunk_list):
                columns.append(
                    (
                        seq,
                        MetricColumns(
                            key=key,
                            steps=base64.b64decode(chunk["steps"]),
                            values=base64.b64decode(chunk["values"]),
                            times=base64.b64decode(chunk["times"]),
                            count=chunk["count"],
                            first_step=chunk["first_step"],
                            last_step=chunk["last_step"],
                        ),
                    )
                )
            seqs[key] = 0
        summaries = []
        for key, text in doc["summaries"].items():
            last, step, low, high, count = json.loads(text)
            summaries.append(
                MetricSummary(
                    key, _nan_null(last), int(step), _nan_null(low), _nan_null(high), int(count)
                )
            )
        for seq, column in columns:
            self.append_metrics(
                doc["id"], [column], {column.key: seq}, [], heartbeat_at=doc["start_time"]
            )
        if summaries:
            self.append_metrics(doc["id"], [], {}, summaries, heartbeat_at=doc["start_time"])
        status = RunStatus(doc["status"])
        if status.is_final:
            self.finish_run(
                doc["id"], status, doc["end_time"] or doc["start_time"], doc.get("error")
            )
        return outcome

    def finish_run(
        self, run_id: str, status: RunStatus, end_time: float, error: str | None = None
    ) -> None:
        """Set a final status; a run already final keeps the status it has."""
        if not status.is_final:
            raise RunStateError(f"cannot finish run {run_id} as {status}")
        runs = schema.runs
        with write_transaction(self.engine) as connection:
            connection.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == str(RunStatus.RUNNING))
                .values(status=str(status), end_time=end_time, error=error)
            )

    def reopen_run(
        self, run_id: str, *, host: str, pid: int, pid_start: float | None, now: float
    ) -> None:
        """Mark a run running again under a new process (a resumed run)."""
        runs = schema.runs
        with write_transaction(self.engine) as connection:
            connection.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    status=str(RunStatus.RUNNING),
                    end_time=None,
                    error=None,
                    host=host,
                    pid=pid,
                    pid_start=pid_start,
                    heartbeat_at=now,
                )
            )

    def heartbeat(self, run_id: str, now: float) -> None:
        runs = schema.runs
        with write_transaction(self.engine) as connection:
            connection.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=now))

    def live_runs(self) -> list[LiveRun]:
        runs = schema.runs
        query = sa.select(
            runs.c.id, runs.c.host, runs.c.pid, runs.c.pid_start, runs.c.heartbeat_at
        ).where(runs.c.status == str(RunStatus.RUNNING))
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return [
            LiveRun(
                id=r.id, host=r.host, pid=r.pid, pid_start=r.pid_start, heartbeat_at=r.heartbeat_at
            )
            for r in rows
        ]

    def delete_run(self, run_id: str) -> None:
        files = schema.mlflow_files
        # The files MLflow's client put under the run (artifact proxy paths runs/ID/...):
        # kept, they would hold their objects from gc for good.
        under = f"runs/{run_id}/"
        with write_transaction(self.engine) as connection:
            for table in schema.RUN_CHILD_TABLES:
                connection.execute(table.delete().where(table.c.run_id == run_id))
            connection.execute(
                files.delete().where(sa.func.substr(files.c.path, 1, len(under)) == under)
            )
            connection.execute(schema.runs.delete().where(schema.runs.c.id == run_id))

    # metrics ---------------------------------------------------------------

    def metric_state(self, run_id: str) -> tuple[dict[str, int], dict[str, MetricSummary]]:
        """The next chunk number and the summary of every key of a run (for a writer)."""
        chunks, summaries = schema.metric_chunks, schema.metric_summaries
        with read_transaction(self.engine) as connection:
            seqs = connection.execute(
                sa.select(chunks.c.key, sa.func.max(chunks.c.seq))
                .where(chunks.c.run_id == run_id)
                .group_by(chunks.c.key)
            ).all()
            rows = connection.execute(
                sa.select(summaries).where(summaries.c.run_id == run_id)
            ).all()
        return (
            {key: int(seq) + 1 for key, seq in seqs},
            {r.key: self._summary(r) for r in rows},
        )

    def append_metrics(
        self,
        run_id: str,
        columns: Sequence[MetricColumns],
        seqs: Mapping[str, int],
        summaries: Sequence[MetricSummary],
        heartbeat_at: float,
    ) -> None:
        """Store one flush: a chunk per key, the new summaries and a heartbeat, atomically."""
        chunk_rows = [
            {
                "run_id": run_id,
                "key": c.key,
                "seq": seqs[c.key],
                "count": c.count,
                "first_step": c.first_step,
                "last_step": c.last_step,
                "steps": c.steps,
                "vals": c.values,
                "times": c.times,
            }
            for c in columns
        ]
        summary_rows = [
            {
                "run_id": run_id,
                "key": s.key,
                "last": _null_nan(s.last),
                "last_step": s.last_step,
                "min": _null_nan(s.min),
                "max": _null_nan(s.max),
                "count": s.count,
                "summary_json": summary_json(s),
            }
            for s in summaries
        ]
        runs, chunks = schema.runs, schema.metric_chunks
        with write_transaction(self.engine) as connection:
            # A flush sent again (a retry after a reply was lost) is stored once: chunks
            # already there are skipped, and so are their keys' summaries, which must not
            # step back to an older state.
            stored = (
                {
                    (r.key, r.seq)
                    for r in connection.execute(
                        sa.select(chunks.c.key, chunks.c.seq).where(
                            chunks.c.run_id == run_id,
                            sa.tuple_(chunks.c.key, chunks.c.seq).in_(
                                [(row["key"], row["seq"]) for row in chunk_rows]
                            ),
                        )
                    )
                }
                if chunk_rows
                else set()
            )
            if stored:
                again = {key for key, _ in stored}
                chunk_rows = [r for r in chunk_rows if (r["key"], r["seq"]) not in stored]
                summary_rows = [r for r in summary_rows if r["key"] not in again]
            if chunk_rows:
                connection.execute(chunks.insert(), chunk_rows)
            upsert(connection, schema.metric_summaries, summary_rows, ("run_id", "key"))
            connection.execute(
                runs.update().where(runs.c.id == run_id).values(heartbeat_at=heartbeat_at)
            )

    def append_series(
        self,
        run_id: str,
        series: Mapping[str, tuple[Any, Any, Any]],
        now: float | None,
        *,
        check: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Store points of several keys as one chunk each, numbered and summarised inside the
        transaction (with the run's row locked): writers that share no state, such as the
        requests of an MLflow client, never take the same chunk number. check runs first in
        the same transaction (what the caller requires of the run) and may refuse; now is
        the run's heartbeat (None: a run no process of ours stands behind has none)."""
        from lockstep.meta.shapes import merge_summary

        made = _series_statements()
        with write_transaction(self.engine) as connection:
            if check is not None:
                check(connection)
            if connection.dialect.name != "sqlite":  # SQLite's writers queue already
                connection.execute(made.lock, {"run_id": run_id})
            # A key's summary and its chunks are written together: one query finds both
            # the summary and the last chunk number.
            seqs, old = {}, {}
            for row in connection.execute(made.state, {"run_id": run_id, "keys": list(series)}):
                seqs[row.key] = row.seq
                old[row.key] = self._summary(row)
            chunk_rows, summary_rows = [], []
            for key, (steps, values, times) in series.items():
                if not len(steps):
                    continue
                chunk_rows.append(
                    {
                        "run_id": run_id,
                        "key": key,
                        "seq": int(seqs[key]) + 1 if seqs.get(key) is not None else 0,
                        "count": len(steps),
                        "first_step": int(steps[0]),
                        "last_step": int(steps[-1]),
                        "steps": steps.astype("<i8").tobytes(),
                        "vals": values.astype("<f8").tobytes(),
                        "times": times.astype("<f8").tobytes(),
                    }
                )
                summary = merge_summary(old.get(key), key, steps, values)
                summary_rows.append(
                    {
                        "run_id": run_id,
                        "key": key,
                        "last": _null_nan(summary.last),
                        "last_step": summary.last_step,
                        "min": _null_nan(summary.min),
                        "max": _null_nan(summary.max),
                        "count": summary.count,
                        "summary_json": summary_json(summary),
                    }
                )
            if chunk_rows:
                connection.execute(made.insert_chunks, chunk_rows)
                connection.execute(made.upsert_summaries[connection.dialect.name], summary_rows)
            if now is not None:
                connection.execute(made.heartbeat, {"run_id": run_id, "now": now})

    def metric_chunks(self, run_id: str, key: str) -> StoredChunks:
        chunks = schema.metric_chunks
        query = (
            sa.select(chunks.c.steps, chunks.c.vals, chunks.c.times)
            .where(chunks.c.run_id == run_id, chunks.c.key == key)
            .order_by(chunks.c.seq)
        )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return StoredChunks(
            steps=[bytes(r[0]) for r in rows],
            values=[bytes(r[1]) for r in rows],
            times=[bytes(r[2]) for r in rows],
        )

    def replace_metric_chunks(self, run_id: str, key: str, merged: Sequence[MetricColumns]) -> None:
        """Swap every chunk of a series for merged ones (compaction), atomically."""
        chunks = schema.metric_chunks
        rows = [
            {
                "run_id": run_id,
                "key": key,
                "seq": seq,
                "count": m.count,
                "first_step": m.first_step,
                "last_step": m.last_step,
                "steps": m.steps,
                "vals": m.values,
                "times": m.times,
            }
            for seq, m in enumerate(merged)
        ]
        with write_transaction(self.engine) as connection:
            connection.execute(
                chunks.delete().where(chunks.c.run_id == run_id, chunks.c.key == key)
            )
            if rows:
                connection.execute(chunks.insert(), rows)

    def compact_metrics(self, run_id: str) -> None:
        """Merge each series of a run stored in several chunks into few large ones."""
        for key, count in self.chunk_counts(run_id).items():
            if count > 1:
                stored = self.metric_chunks(run_id, key)
                merged = merge_chunks(key, stored.steps, stored.values, stored.times)
                self.replace_metric_chunks(run_id, key, merged)

    def chunk_counts(self, run_id: str) -> dict[str, int]:
        chunks = schema.metric_chunks
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(chunks.c.key, sa.func.count())
                .where(chunks.c.run_id == run_id)
                .group_by(chunks.c.key)
            ).all()
        return {key: int(n) for key, n in rows}

    @staticmethod
    def _summary(row: Any) -> MetricSummary:
        return MetricSummary(
            key=row.key,
            last=_nan_null(row.last),
            last_step=int(row.last_step),
            min=_nan_null(row.min),
            max=_nan_null(row.max),
            count=int(row.count),
        )

    # reading runs ------------------------------------------------------------

    def resolve(self, ref: str, *, last_of: str | None = None) -> str:
        """A run id from a full id, a unique prefix (4+ characters), a unique name or ``last``."""
        ref = ref.strip()
        runs = schema.runs
        with read_transaction(self.engine) as connection:
            if ref == "last":
                query = sa.select(runs.c.id).order_by(runs.c.start_time.desc(), runs.c.id.desc())
                if last_of is not None:
                    query = query.join(
                        schema.experiments, schema.experiments.c.id == runs.c.experiment_id
                    ).where(schema.experiments.c.name == last_of)
                row = connection.execute(query.limit(1)).first()
                if row is None:
                    raise RunNotFound(ref)
                return str(row[0])
            lowered = ref.lower()
            if len(lowered) == ID_LENGTH and looks_like_id_prefix(lowered):
                row = connection.execute(sa.select(runs.c.id).where(runs.c.id == lowered)).first()
                if row is not None:
                    return str(row[0])
            by_name = connection.execute(
                sa.select(runs.c.id).where(runs.c.name == ref).limit(20)
            ).all()
            if len(by_name) == 1:
                return str(by_name[0][0])
            if len(by_name) > 1:
                raise AmbiguousRunRef(ref, [str(r[0]) for r in by_name])
            if looks_like_id_prefix(lowered):
                if len(lowered) < MIN_PREFIX:
                    raise InvalidRunRef(ref, f"give at least {MIN_PREFIX} characters of the id")
                matches = connection.execute(
                    sa.select(runs.c.id)
                    .where(runs.c.id >= lowered, runs.c.id < lowered + "~")
                    .order_by(runs.c.id)
                    .limit(20)
                ).all()
                if len(matches) == 1:
                    return str(matches[0][0])
                if len(matches) > 1:
                    raise AmbiguousRunRef(ref, [str(r[0]) for r in matches])
        raise RunNotFound(ref)

    def get_run(self, run_id: str) -> RunRecord:
        records = self._load_ids([run_id], with_sections=True)
        if not records:
            raise RunNotFound(run_id)
        return records[0]

    def search(
        self,
        *,
        experiment: str | None = None,
        where: Node | None = None,
        sort: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int = 0,
        conditions: Sequence[Any] = (),
    ) -> list[RunRecord]:
        """Runs matching a filter, sorted (newest first by default; missing values last),
        with their params, final metrics, tags and artifacts. conditions: SQL expressions
        over runs and experiments that a caller of this SQL store adds (the MLflow API's
        lifecycle stages and dataset inputs)."""

        def matching(query: sa.Select[Any]) -> sa.Select[Any]:
            if conditions:
                query = query.where(*conditions)
            if experiment is not None:
                query = query.where(schema.experiments.c.name == experiment)
            if where is not None:
                query = query.where(search.compile_filter(where))
            return query

        split = None
        if limit is not None:
            split = search.split_on_first_key(matching(self._id_query()), sort)
        if split is None and limit is not None and offset:
            # Deep pages: walk the ids to the page first; aggregating params and metrics
            # for every skipped run would cost seconds 100,000 runs in.
            ids_query = search.apply_sort(matching(self._id_query()), sort)
            with read_transaction(self.engine) as connection:
                ids = list(connection.execute(ids_query.limit(limit).offset(offset)).scalars())
            return self._load_ids(ids, with_sections=False)
        if split is None:
            # One pass: filter, sort and page with the per-run aggregates alongside.
            query = search.apply_sort(matching(self._record_query()), sort)
            if limit is not None:
                query = query.limit(limit)
            if offset:
                query = query.offset(offset)
            with read_transaction(self.engine) as connection:
                rows = connection.execute(query).all()
                return self._records(connection, rows, with_sections=False)
        # Two passes: walk the sort key's index to the page's ids, then load those runs.
        with_value, lacking = split
        assert limit is not None
        wanted = limit + offset
        with read_transaction(self.engine) as connection:
            ids = list(connection.execute(with_value.limit(wanted)).scalars())
            if len(ids) < wanted:
                ids += connection.execute(lacking.limit(wanted - len(ids))).scalars()
        return self._load_ids(ids[offset:], with_sections=False)

    def count(
        self,
        *,
        experiment: str | None = None,
        where: Node | None = None,
        conditions: Sequence[Any] = (),
    ) -> int:
        runs = schema.runs
        query = sa.select(sa.func.count()).select_from(
            runs.join(schema.experiments, schema.experiments.c.id == runs.c.experiment_id)
        )
        if conditions:
            query = query.where(*conditions)
        if experiment is not None:
            query = query.where(schema.experiments.c.name == experiment)
        if where is not None:
            query = query.where(search.compile_filter(where))
        with read_transaction(self.engine) as connection:
            return int(connection.execute(query).scalar_one())

    @staticmethod
    def _id_query() -> sa.Select[Any]:
        runs, experiments = schema.runs, schema.experiments
        return sa.select(runs.c.id).select_from(
            runs.join(experiments, experiments.c.id == runs.c.experiment_id)
        )

    @staticmethod
    def _record_query() -> sa.Select[Any]:
        """Every column a record needs; params, summaries and tags as one JSON text each,
        aggregated in the database (one row per run instead of one per value)."""
        runs, experiments = schema.runs, schema.experiments
        return sa.select(
            runs.c.id,
            runs.c.name,
            experiments.c.name.label("experiment"),
            runs.c.status,
            runs.c.start_time,
            runs.c.end_time,
            runs.c.host,
            runs.c.pid,
            runs.c.note,
            runs.c.error,
            aggregate.params_json().label("params_json"),
            aggregate.summaries_json().label("summaries_json"),
            aggregate.tags_json().label("tags_json"),
        ).select_from(runs.join(experiments, experiments.c.id == runs.c.experiment_id))

    def _load_ids(self, ids: Sequence[str], *, with_sections: bool) -> list[RunRecord]:
        """The records of these runs, in the order given."""
        found: dict[str, Any] = {}
        with read_transaction(self.engine) as connection:
            for batch in _batches(ids):
                query = self._record_query().where(schema.runs.c.id.in_(batch))
                found.update((row.id, row) for row in connection.execute(query))
            rows = [found[i] for i in ids if i in found]
            return self._records(connection, rows, with_sections=with_sections)

    def _records(
        self, connection: sa.Connection, rows: Sequence[Any], *, with_sections: bool
    ) -> list[RunRecord]:
        """Records from rows of _record_query, with artifacts (and sections) attached."""
        ids = [r.id for r in rows]
        artifacts: dict[str, list[Artifact]] = {i: [] for i in ids}
        sections: dict[str, dict[str, Any]] = {i: {} for i in ids}
        a, s = schema.artifacts, schema.run_sections
        for batch in _batches(ids):
            for r in connection.execute(
                sa.select(a).where(a.c.run_id.in_(batch)).order_by(a.c.path)
            ):
                artifacts[r.run_id].append(
                    Artifact(path=r.path, digest=r.digest, size=r.size, kind=r.kind)
                )
            if with_sections:
                for r in connection.execute(sa.select(s).where(s.c.run_id.in_(batch))):
                    sections[r.run_id][r.name] = json.loads(r.value_json)
        return [
            RunRecord(
                id=r.id,
                name=r.name,
                experiment=r.experiment,
                status=RunStatus(r.status),
                start_time=r.start_time,
                end_time=r.end_time,
                host=r.host,
                pid=r.pid,
                note=r.note or "",
                error=r.error,
                params=aggregate.decode_params(r.params_json),
                metrics=aggregate.decode_summaries(r.summaries_json),
                tags=aggregate.decode_tags(r.tags_json),
                artifacts=tuple(artifacts[r.id]),
                sections=sections[r.id],
            )
            for r in rows
        ]


@dataclass(frozen=True)
class _SeriesStatements:
    lock: Any
    state: Any
    insert_chunks: Any
    upsert_summaries: dict[str, Any]
    heartbeat: Any


@functools.cache
def _series_statements() -> _SeriesStatements:
    """append_series' statements, built once: an MLflow client's per-call log_metric is one
    append each, and building the expressions anew cost more than running them."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    runs, chunks, summaries = schema.runs, schema.metric_chunks, schema.metric_summaries
    run_id: Any = sa.bindparam("run_id")
    keys: Any = sa.bindparam("keys", expanding=True)
    upserts: dict[str, Any] = {}
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert)):
        statement = insert(summaries)
        upserts[name] = statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                c.name: statement.excluded[c.name]
                for c in summaries.columns
                if c.name not in ("run_id", "key")
            },
        )
    last_seq = (
        sa.select(sa.func.max(chunks.c.seq))
        .where(chunks.c.run_id == summaries.c.run_id, chunks.c.key == summaries.c.key)
        .scalar_subquery()
    )
    return _SeriesStatements(
        lock=sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update(),
        state=sa.select(summaries, last_seq.label("seq")).where(
            summaries.c.run_id == run_id, summaries.c.key.in_(keys)
        ),
        insert_chunks=chunks.insert(),
        upsert_summaries=upserts,
        heartbeat=runs.update().where(runs.c.id == run_id).values(heartbeat_at=sa.bindparam("now")),
    )


def _alive_here(host: str, pid: int) -> bool:
    """Whether a run's process lives on this machine now (a pull must not replace it)."""
    import os
    import socket

    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

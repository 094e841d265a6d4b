"""Read queries behind the hub's views: the keys a project's runs use, the verification
verdict of a page of runs, and runs grouped by a param with their metrics aggregated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lockstep.core.query import Node
from lockstep.meta import schema, search
from lockstep.meta.engine import read_transaction

# The most keys of one kind, and the most groups, one answer lists (a view past that
# is unreadable, and the answer would be megabytes).
MAX_KEYS = 5000
MAX_GROUPS = 1000
_BATCH = 500


def _in_experiment(query: sa.Select[Any], experiment: str | None) -> sa.Select[Any]:
    if experiment is None:
        return query
    return query.where(
        schema.runs.c.experiment_id.in_(
            sa.select(schema.experiments.c.id).where(schema.experiments.c.name == experiment)
        )
    )


def verdict_of(verifications: Any) -> dict[str, Any] | None:
    """The newest reproduction verdict in a run's verification history, or None when
    the run was never reproduced (comparisons against another run do not count)."""
    if not isinstance(verifications, list):
        return None
    for entry in reversed(verifications):
        if isinstance(entry, dict) and entry.get("kind", "reproduction") == "reproduction":
            return {
                "verdict": entry.get("verdict"),
                "within_noise": bool(entry.get("within_noise")),
                "time": entry.get("time"),
                "count": len(verifications),
            }
    return None


class ViewQueries:
    """The hub's queries on one metadata store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def keys(self, experiment: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag keys some run (of the experiment) has, sorted."""
        runs = schema.runs
        found: dict[str, list[str]] = {}
        with read_transaction(self.engine) as connection:
            for kind, table in (
                ("params", schema.params),
                ("metrics", schema.metric_summaries),
                ("tags", schema.tags),
            ):
                query = sa.select(table.c.key).distinct()
                if experiment is not None:
                    query = _in_experiment(
                        query.join(runs, runs.c.id == table.c.run_id), experiment
                    )
                query = query.order_by(table.c.key).limit(MAX_KEYS)
                found[kind] = list(connection.execute(query).scalars())
        return found

    def verdicts(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest reproduction verdict of each of these runs that has one."""
        sections = schema.run_sections
        found: dict[str, dict[str, Any]] = {}
        with read_transaction(self.engine) as connection:
            for start in range(0, len(run_ids), _BATCH):
                query = sa.select(sections.c.run_id, sections.c.value_json).where(
                    sections.c.name == "verifications",
                    sections.c.run_id.in_(run_ids[start : start + _BATCH]),
                )
                for run_id, value in connection.execute(query):
                    verdict = verdict_of(json.loads(value))
                    if verdict is not None:
                        found[run_id] = verdict
        return found

    def groups(
        self,
        param: str,
        metrics: Sequence[str],
        *,
        experiment: str | None = None,
        where: Node | None = None,
    ) -> list[dict[str, Any]]:
        """Runs grouped by one param's value (runs without it in one group, value None),
        with each metric's last value averaged, and its lowest and highest, per group;
        the largest groups first."""
        runs, experiments, params = schema.runs, schema.experiments, schema.params
        value = params.c.value_json
        source = runs.join(experiments, experiments.c.id == runs.c.experiment_id).outerjoin(
            params, sa.and_(params.c.run_id == runs.c.id, params.c.key == param)
        )
        columns: list[Any] = [value.label("value"), sa.func.count(runs.c.id).label("runs")]
        for index, key in enumerate(metrics):
            summary = schema.metric_summaries.alias(f"s{index}")
            source = source.outerjoin(
                summary, sa.and_(summary.c.run_id == runs.c.id, summary.c.key == key)
            )
            columns += [
                sa.func.avg(summary.c.last).label(f"mean{index}"),
                sa.func.min(summary.c.last).label(f"min{index}"),
                sa.func.max(summary.c.last).label(f"max{index}"),
                sa.func.count(summary.c.last).label(f"n{index}"),
            ]
        query = sa.select(*columns).select_from(source)
        if experiment is not None:
            query = query.where(experiments.c.name == experiment)
        if where is not None:
            query = query.where(search.compile_filter(where))
        query = (
            query.group_by(value).order_by(sa.func.count(runs.c.id).desc(), value).limit(MAX_GROUPS)
        )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(query).all()
        return [
            {
                "value": None if row.value is None else json.loads(row.value),
                "runs": row.runs,
                "metrics": {
                    key: {
                        "mean": getattr(row, f"mean{i}"),
                        "min": getattr(row, f"min{i}"),
                        "max": getattr(row, f"max{i}"),
                        "runs": getattr(row, f"n{i}"),
                    }
                    for i, key in enumerate(metrics)
                },
            }
            for row in rows
        ]

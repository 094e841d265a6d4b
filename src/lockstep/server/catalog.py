"""Read routes for what a project holds besides runs: datasets and their versions, model
versions, aliases and their history, a run's verifications, lineage. The same answers
as the CLI's --json, for the hub and other tools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from lockstep.core import validate
from lockstep.errors import DatasetNotFound, InvalidValue, ModelNotFound
from lockstep.server.scope import Scope, run_id_of


def _name(value: str, missing: type[LookupError]) -> str:
    try:
        return validate.name(value, "name")
    except InvalidValue:
        raise missing(value[:80]) from None  # a name that cannot exist matches nothing


def add_routes(api: APIRouter) -> None:
    @api.get("/datasets")
    def datasets(project: Scope) -> dict[str, Any]:
        """Each dataset's newest version."""
        records = project.workspace().dataset_records()
        return {"datasets": [v.to_json() for v in records.latest_versions()]}

    @api.get("/datasets/{name}/versions")
    def dataset_versions(project: Scope, name: str) -> dict[str, Any]:
        records = project.workspace().dataset_records()
        found = records.versions(_name(name, DatasetNotFound))
        if not found:
            raise DatasetNotFound(name)
        return {"versions": [v.to_json() for v in found]}

    @api.get("/datasets/{name}/versions/{number}")
    def dataset_version(project: Scope, name: str, number: int) -> dict[str, Any]:
        """One version: its files (path, digest, size) and the runs that used or made it."""
        records = project.workspace().dataset_records()
        found = [v for v in records.versions(_name(name, DatasetNotFound)) if v.number == number]
        if not found:
            raise DatasetNotFound(f"{name}@v{number}")
        version = found[0]
        return {
            **version.to_json(),
            "file_list": [
                {"path": f.path, "digest": f.digest, "size": f.size}
                for f in records.files(version.id)
            ],
            "runs": [{"run": run, "role": role} for run, role in records.runs_of(version.id)],
        }

    @api.get("/models")
    def models(project: Scope) -> dict[str, Any]:
        """Each model's newest version, with every alias of the model."""
        records = project.workspace().model_records()
        aliases = records.all_aliases()
        return {
            "models": [
                {**v.to_json(), "model_aliases": aliases.get(v.model, {})}
                for v in records.latest_versions()
            ]
        }

    @api.get("/models/{name}/versions")
    def model_versions(project: Scope, name: str) -> dict[str, Any]:
        records = project.workspace().model_records()
        found = records.versions(_name(name, ModelNotFound))
        if not found:
            raise ModelNotFound(name)
        return {
            "versions": [v.to_json() for v in found],
            "aliases": records.aliases(name),
            "alias_history": [m.to_json() for m in records.alias_history(name)],
        }

    @api.get("/runs/{run_id}/verifications")
    def verifications(project: Scope, run_id: str) -> dict[str, Any]:
        """The run's verification history, oldest first."""
        record = project.meta.get_run(run_id_of(run_id))
        return {"verifications": record.sections.get("verifications", [])}

    @api.get("/lineage")
    def lineage(
        project: Scope,
        ref: str = Query(..., max_length=600),
        downstream: bool = False,
        depth: int | None = Query(None, ge=1, le=1000),
    ) -> dict[str, Any]:
        """What made ref (or, downstream, what was built on it), as `lockstep lineage
        --json` prints it."""
        from lockstep.models.lineage import lineage as walk

        graph = walk(project.workspace(), ref, downstream=downstream, depth=depth, file_refs=False)
        return dict(graph.to_json())

"""MLflow's tracking, logged-model and registry API over one lockstep workspace.

Each endpoint takes MLflow's request as a dict (a JSON body, or a GET's query) and returns
MLflow's response as a dict; what it refuses raises MlflowApiError with MLflow's error
code. The server's routes and the no-server plugin both call ``handle``, so the two speak
exactly the same API. MLflow runs are lockstep runs; experiments, models and aliases are
lockstep's own, with what MLflow needs beyond them in ``meta.mlflow_records``.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lockstep.core import validate
from lockstep.core.ids import new_run_id
from lockstep.core.status import RunStatus
from lockstep.errors import (
    InvalidValue,
    LockstepError,
    MlflowApiError,
    ModelNotFound,
    PromotionRefused,
    RunNotFound,
    UsageError,
)
from lockstep.mlflow import search

if TYPE_CHECKING:
    from lockstep.core.records import RunRecord
    from lockstep.meta.models import ModelVersion
    from lockstep.workspace import Workspace

# MLflow's limits (log-batch, search pages), as its own server enforces them.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_TOTAL = 1000
MAX_SEARCH_RESULTS = 50_000
DEFAULT_SEARCH_RESULTS = 1000
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
DEFAULT_EXPERIMENT = "default"  # lockstep's; MLflow calls it "Default", id "0"
_STATUS_OUT = {
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "crashed": "FAILED",
}
_VIEW_TYPES = {
    "1": ("active",),
    "ACTIVE_ONLY": ("active",),
    "2": ("deleted",),
    "DELETED_ONLY": ("deleted",),
    "3": ("active", "deleted"),
    "ALL": ("active", "deleted"),
}
# The git facts MLflow's client sends as tags, and where lockstep keeps them.
_SOURCE_TAGS = {
    "mlflow.source.git.commit": "commit",
    "mlflow.source.git.branch": "branch",
    "mlflow.source.git.repoURL": "remote",
    "mlflow.source.name": "source_name",
}
_ROUTE_PARAM = re.compile(r"\{(\w+)\}")


def _missing(what: str) -> MlflowApiError:
    return MlflowApiError("RESOURCE_DOES_NOT_EXIST", what)


def _invalid(what: str) -> MlflowApiError:
    return MlflowApiError("INVALID_PARAMETER_VALUE", what)


def _text(body: Mapping[str, Any], field: str, *, required: bool = True, limit: int = 1000) -> str:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise _invalid(f"Missing value for required parameter '{field}'.")
        return ""
    if isinstance(value, list) and len(value) == 1:  # a GET's query parameter
        value = value[0]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _invalid(f"Invalid value for parameter '{field}': must be a string")
    text = str(value)
    if len(text) > limit or "\x00" in text:
        raise _invalid(f"Invalid value for parameter '{field}': at most {limit} characters")
    return text


def _int(body: Mapping[str, Any], field: str, default: int | None = None) -> int | None:
    value = body.get(field)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(f"Invalid value {value!r} for parameter '{field}': an integer") from None
    if not -(2**63) <= number < 2**63:
        raise _invalid(f"Invalid value for parameter '{field}': out of the 64-bit range")
    return number


def _float(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise _invalid(f"Invalid value {value!r} for parameter '{field}': a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _invalid(f"Invalid value {value!r} for parameter '{field}': a number") from None


def _list(body: Mapping[str, Any], field: str) -> list[Any]:
    value = body.get(field) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise _invalid(f"Invalid value for parameter '{field}': a list")
    return value


def _key(value: Any, field: str, limit: int = 250) -> str:
    """A metric, param or tag key: MLflow's character set (letters, digits, _ - . space /)."""
    if not isinstance(value, str) or not value:
        raise _invalid(f"Invalid value for parameter '{field}': a non-empty string")
    if len(value) > limit:
        raise _invalid(f"'{field}' {value[:40]!r}... is longer than {limit} characters")
    if not re.fullmatch(r"[\w\-. /:]+", value) or value.startswith("/") or ".." in value.split("/"):
        raise _invalid(
            f"Invalid {field} {value!r}: names may only contain alphanumerics, underscores (_), "
            "dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"
        )
    return value


def _pairs(items: Any, field: str) -> dict[str, str]:
    """MLflow's [{key, value}] lists as a dict, each checked."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _invalid(f"Invalid value for parameter '{field}': a list of {{key, value}}")
    found: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise _invalid(f"Invalid value for parameter '{field}': a list of {{key, value}}")
        key = _key(item.get("key"), f"{field}.key")
        value = item.get("value", "")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _invalid(f"Invalid value for {field} {key!r}: a string")
        text = str(value)
        if len(text) > MAX_TAG_LENGTH or "\x00" in text:
            raise _invalid(f"{field} {key!r} is longer than {MAX_TAG_LENGTH} characters")
        found[key] = text
    return found


def _page(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 12:
        raise _invalid(f"Invalid page token {token[:40]!r}; start again without it")
    return int(token)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _number(value: float) -> float | str:
    """A metric value as MLflow's JSON spells the ones JSON cannot hold."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _param_text(value: Any) -> str:
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float) or value is None:
        return str(value)
    return json.dumps(value)


class MlflowService:
    """The endpoints, on one workspace (a server's project, or a local store)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        artifact_scheme: str = "mlflow-artifacts",
        host: str = "mlflow",
        pid: int = 0,
        user: str | None = None,
    ) -> None:
        from lockstep.meta.mlflow_records import MlflowRecords

        self.workspace = workspace
        self.meta = workspace.meta
        self.records = MlflowRecords(workspace.meta.engine)
        self.artifact_scheme = artifact_scheme
        # Runs made here are of this host and process: 0 for a server's, which no process
        # of its own stands behind (the client ends them).
        self.host = host
        self.pid = pid
        self.user = user
        # The run `lockstep run` made, if MLflow's first run in it should be that run.
        self.claim: Callable[[], str | None] | None = None

    # dispatch ----------------------------------------------------------------------

    def handle(self, method: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """MLflow's response to method on path (after ``/api/2.0/mlflow/``)."""
        handler, params = self.route(method, path)
        try:
            answer: dict[str, Any] = handler({**body, **params})
            return answer
        except MlflowApiError:
            raise
        except (RunNotFound, ModelNotFound) as exc:
            raise _missing(str(exc)) from None
        except PromotionRefused as exc:
            raise MlflowApiError("INVALID_STATE", str(exc)) from None
        except (InvalidValue, UsageError) as exc:
            raise _invalid(str(exc)) from None

    def route(
        self, method: str, path: str
    ) -> tuple[Callable[[dict[str, Any]], Any], dict[str, str]]:
        parts = path.strip("/").split("/")
        for (verb, pattern), name in _ROUTES.items():
            if verb != method:
                continue
            expected = pattern.split("/")
            if len(expected) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(expected, parts, strict=True):
                match = _ROUTE_PARAM.fullmatch(want)
                if match:
                    params[match.group(1)] = got
                elif want != got:
                    break
            else:
                return getattr(self, name), params
        raise MlflowApiError("ENDPOINT_NOT_FOUND", f"No API endpoint {method} {path}")

    # experiments -------------------------------------------------------------------

    def _experiment_id(self, value: Any) -> int:
        text = str(value[0] if isinstance(value, list) and len(value) == 1 else value)
        if text == "0":
            return self._default_experiment()
        if not text.isdigit() or len(text) > 12:
            raise _missing(f"Could not find experiment with ID {text[:40]}")
        return int(text)

    def _default_experiment(self) -> int:
        found = self.records.experiment(name=DEFAULT_EXPERIMENT)
        if found is not None:
            return found.id
        experiment_id, _ = self.records.create_experiment(DEFAULT_EXPERIMENT, {}, time.time())
        return experiment_id

    def _experiment_row(self, experiment_id: int) -> Any:
        row = self.records.experiment(id=experiment_id)
        if row is None:
            raise _missing(f"No Experiment with id={experiment_id} exists")
        return row

    def _experiment_json(self, row: Any) -> dict[str, Any]:
        default = row.name == DEFAULT_EXPERIMENT
        mlflow_id = "0" if default else str(row.id)
        return {
            "experiment_id": mlflow_id,
            "name": "Default" if default else row.name,
            "artifact_location": f"{self.artifact_scheme}:/experiments/{mlflow_id}",
            "lifecycle_stage": row.lifecycle_stage,
            "last_update_time": _ms(row.last_update_time),
            "creation_time": _ms(row.created_at),
            "tags": [{"key": k, "value": v} for k, v in sorted(row.tags.items())],
        }

    @staticmethod
    def _lockstep_name(name: str) -> str:
        return DEFAULT_EXPERIMENT if name == "Default" else name

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._lockstep_name(_text(body, "name", limit=255))
        tags = _pairs(body.get("tags"), "tags")
        experiment_id, created = self.records.create_experiment(name, tags, time.time())
        if not created:
            raise MlflowApiError(
                "RESOURCE_ALREADY_EXISTS", f"Experiment '{body['name']}' already exists."
            )
        return {"experiment_id": "0" if name == DEFAULT_EXPERIMENT else str(experiment_id)}

    def get_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        row = self._experiment_row(self._experiment_id(_text(body, "experiment_id")))
        return {"experiment": self._experiment_json(row)}

    def get_experiment_by_name(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _text(body, "experiment_name", limit=255)
        if self._lockstep_name(name) == DEFAULT_EXPERIMENT:
            self._default_experiment()
        row = self.records.experiment(name=self._lockstep_name(name))
        if row is None:
            raise _missing(f"Could not find experiment with name '{name}'")
        return {"experiment": self._experiment_json(row)}

    def search_experiments(self, body: dict[str, Any]) -> dict[str, Any]:
        stages = _VIEW_TYPES.get(str(body.get("view_type") or "ACTIVE_ONLY"))
        if stages is None:
            raise _invalid(f"Invalid view_type {body.get('view_type')!r}")
        limit = _int(body, "max_results", DEFAULT_SEARCH_RESULTS) or DEFAULT_SEARCH_RESULTS
        if not 0 < limit <= MAX_SEARCH_RESULTS:
            raise _invalid(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}")
        self._default_experiment()
        rows = [self._experiment_json(r) for r in self.records.experiments(stages=stages)]
        for clause in search.parse_clauses(_text(body, "filter", required=False, limit=10_000)):
            rows = [r for r in rows if _experiment_matches(r, clause)]
        order = [str(o) for o in _list(body, "order_by")] or ["creation_time DESC"]
        for item in reversed(order):
            field, _, direction = item.strip().partition(" ")
            field = field.removeprefix("attributes.").removeprefix("attribute.")
            if field not in ("name", "experiment_id", "creation_time", "last_update_time"):
                raise _invalid(f"Invalid order_by field {field!r}")
            rows.sort(
                key=lambda r, f=field: int(r[f]) if f == "experiment_id" else r[f],  # type: ignore[misc]
                reverse=direction.strip().upper() == "DESC",
            )
        start = _page(body.get("page_token"))
        page = rows[start : start + limit]
        answer: dict[str, Any] = {"experiments": page}
        if start + limit < len(rows):
            answer["next_page_token"] = str(start + limit)
        return answer

    def update_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(_text(body, "experiment_id"))
        row = self._experiment_row(experiment_id)
        name = _text(body, "new_name", required=False, limit=255)
        if name:
            if row.lifecycle_stage != "active":
                raise MlflowApiError("INVALID_STATE", "Cannot rename a non-active experiment.")
            if self.records.name_taken(name):
                raise MlflowApiError(
                    "RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists."
                )
            self.records.update_experiment(experiment_id, name=name)
        return {}

    def delete_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._experiment_stage(body, "deleted")

    def restore_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._experiment_stage(body, "active")

    def _experiment_stage(self, body: dict[str, Any], stage: str) -> dict[str, Any]:
        experiment_id = self._experiment_id(_text(body, "experiment_id"))
        row = self._experiment_row(experiment_id)
        if stage == "deleted" and row.name == DEFAULT_EXPERIMENT:
            raise _invalid("Cannot delete the default experiment '0'.")
        self.records.update_experiment(experiment_id, stage=stage)
        return {}

    def set_experiment_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(_text(body, "experiment_id"))
        self._experiment_row(experiment_id)
        tags = _pairs([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        self.records.update_experiment(experiment_id, set_tags=tags)
        return {}

    def delete_experiment_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(_text(body, "experiment_id"))
        self._experiment_row(experiment_id)
        self.records.update_experiment(experiment_id, delete_tag=_key(body.get("key"), "key"))
        return {}

    # runs --------------------------------------------------------------------------

    def _run(self, body: Mapping[str, Any], *, field: str = "run_id") -> RunRecord:
        value = body.get(field) or body.get("run_uuid")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise _invalid(f"Missing value for required parameter '{field}'.")
        try:
            run_id = validate.run_id(value)
        except InvalidValue:
            raise _missing(f"Run '{value[:40]}' not found") from None
        try:
            return self.meta.get_run(run_id)
        except RunNotFound:
            raise _missing(f"Run '{run_id}' not found") from None

    def _active_run(self, body: Mapping[str, Any]) -> RunRecord:
        run = self._run(body)
        if self.records.run_stages([run.id]).get(run.id) == "deleted":
            raise MlflowApiError(
                "INVALID_STATE",
                f"The run {run.id} must be in the 'active' state. Current state is deleted.",
            )
        return run

    def _experiment_of(self, record: RunRecord) -> dict[str, Any]:
        row = self.records.experiment(name=record.experiment)
        return {
            "id": "0" if record.experiment == DEFAULT_EXPERIMENT or row is None else str(row.id)
        }

    def _run_json(
        self,
        record: RunRecord,
        *,
        stage: str = "active",
        inputs: list[dict[str, Any]] | None = None,
        experiment_ids: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        experiment_id = (
            experiment_ids[record.experiment]
            if experiment_ids is not None and record.experiment in experiment_ids
            else self._experiment_of(record)["id"]
        )
        timestamp = _ms(record.end_time or record.start_time)
        tags = dict(record.tags)
        tags.setdefault("mlflow.runName", record.name)
        info = {
            "run_id": record.id,
            "run_uuid": record.id,
            "run_name": record.name,
            "experiment_id": experiment_id,
            "user_id": tags.get("mlflow.user", ""),
            "status": _STATUS_OUT.get(str(record.status), "FAILED"),
            "start_time": _ms(record.start_time),
            "end_time": _ms(record.end_time),
            "artifact_uri": f"{self.artifact_scheme}:/runs/{record.id}/artifacts",
            "lifecycle_stage": stage,
        }
        outputs = record.sections.get("mlflow_outputs") or []
        return {
            "info": info,
            "data": {
                "metrics": [
                    {
                        "key": key,
                        "value": _number(s.last),
                        "timestamp": timestamp,
                        "step": s.last_step,
                    }
                    for key, s in sorted(record.metrics.items())
                ],
                "params": [
                    {"key": k, "value": _param_text(v)} for k, v in sorted(record.params.items())
                ],
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            },
            "inputs": {"dataset_inputs": inputs or []},
            "outputs": {"model_outputs": outputs},
        }

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.core.names import new_run_name

        experiment_id = self._experiment_id(body.get("experiment_id") or "0")
        experiment = self._experiment_row(experiment_id)
        if experiment.lifecycle_stage != "active":
            raise MlflowApiError(
                "INVALID_STATE", f"The experiment {experiment_id} must be in the 'active' state."
            )
        tags = _pairs(body.get("tags"), "tags")
        user = _text(body, "user_id", required=False, limit=255) or self.user
        if user:
            tags.setdefault("mlflow.user", user)
        name = (
            _text(body, "run_name", required=False, limit=250)
            or tags.get("mlflow.runName")
            or new_run_name()
        )
        tags["mlflow.runName"] = name
        started = _int(body, "start_time")
        start = started / 1000.0 if started else time.time()
        claimed = self.claim() if self.claim is not None else None
        if claimed is not None and "mlflow.parentRunId" not in tags:
            return {"run": self._adopt(claimed, experiment, name, tags)}
        run_id = new_run_id(int(start * 1000))
        from lockstep.tracking.liveness import process_start_time

        self.meta.create_run(
            run_id=run_id,
            name=name,
            experiment=experiment.name,
            start_time=start,
            host=self.host,
            pid=self.pid,
            pid_start=process_start_time(self.pid) if self.pid > 0 else None,
            tags=tags,
        )
        self._fill_sections(run_id, tags, {})
        return {"run": self._run_json(self.meta.get_run(run_id))}

    def _adopt(
        self, run_id: str, experiment: Any, name: str, tags: dict[str, str]
    ) -> dict[str, Any]:
        """MLflow's first run inside `lockstep run` is the run that command recorded: it
        takes MLflow's experiment (when the command named none) and tags, keeps its name."""
        record = self.meta.get_run(run_id)
        if record.experiment == DEFAULT_EXPERIMENT and experiment.name != DEFAULT_EXPERIMENT:
            self.records.set_experiment_of_run(run_id, experiment.id)
        tags["mlflow.runName"] = record.name
        self.meta.set_tags(run_id, tags)
        self._fill_sections(run_id, tags, record.sections)
        return self._run_json(self.meta.get_run(run_id))

    def _fill_sections(
        self, run_id: str, tags: Mapping[str, str], sections: Mapping[str, Any]
    ) -> None:
        """What the client reports of its code, where lockstep captured none itself: kept
        as reported, never as a snapshot a rerun could use."""
        if "code" in sections:
            return
        reported = {field: tags[tag] for tag, field in _SOURCE_TAGS.items() if tags.get(tag)}
        commit = reported.get("commit", "")
        if commit and (not commit.isalnum() or len(commit) > 64):
            reported.pop("commit")
        if reported:
            self.meta.set_sections(
                run_id,
                {
                    "code": {
                        "unavailable": "not captured by lockstep; as the MLflow client reported it",
                        "reported_by": "mlflow",
                        **reported,
                    }
                },
            )

    def update_run(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        name = _text(body, "run_name", required=False, limit=250)
        if name:
            self.records.rename_run(record.id, name)
            self.meta.set_tags(record.id, {"mlflow.runName": name})
        status = body.get("status")
        if status is not None and not self._owned_by_launcher(record):
            lowered = search.STATUSES.get(str(status).upper())
            if lowered is None:
                raise _invalid(f"Invalid run status {status!r}")
            end = _int(body, "end_time")
            final = RunStatus(lowered).is_final
            self.records.set_run_status(
                record.id,
                lowered,
                (end / 1000.0 if end else time.time()) if final else None,
            )
        return {"run_info": self._run_json(self.meta.get_run(record.id))["info"]}

    def _owned_by_launcher(self, record: RunRecord) -> bool:
        """A run `lockstep run` recorded: that command ends it from the exit status."""
        return "command" in record.sections or record.id == os.environ.get("LOCKSTEP_RUN_ID")

    def delete_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.records.set_run_stage(self._run(body).id, "deleted")
        return {}

    def restore_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.records.set_run_stage(self._run(body).id, "active")
        return {}

    def get_run(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._run(body)
        stage = self.records.run_stages([record.id]).get(record.id, "active")
        inputs = self.records.inputs([record.id]).get(record.id, [])
        return {"run": self._run_json(record, stage=stage, inputs=inputs)}

    def search_runs(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.meta.mlflow_records import MlflowRecords

        stages = _VIEW_TYPES.get(str(body.get("run_view_type") or "ACTIVE_ONLY"))
        if stages is None:
            raise _invalid(f"Invalid run_view_type {body.get('run_view_type')!r}")
        limit = _int(body, "max_results", DEFAULT_SEARCH_RESULTS) or DEFAULT_SEARCH_RESULTS
        if not 0 < limit <= MAX_SEARCH_RESULTS:
            raise _invalid(
                f"Invalid value {limit} for parameter 'max_results' supplied. It must be at "
                f"most {MAX_SEARCH_RESULTS}"
            )
        names: dict[str, str] = {}
        for raw in _list(body, "experiment_ids"):
            row = self.records.experiment(id=self._experiment_id(raw))
            if row is not None:
                names[row.name] = "0" if row.name == DEFAULT_EXPERIMENT else str(row.id)
        if not names:
            return {"runs": []}
        from lockstep.core.query import Compare, Field

        node, datasets = search.run_filter(_text(body, "filter", required=False, limit=100_000))
        order = search.run_order([str(o) for o in _list(body, "order_by")])
        conditions = [MlflowRecords.stage_condition(stages)]
        conditions += [MlflowRecords.dataset_condition(c.key, c.op, c.values) for c in datasets]
        in_experiments = Compare(
            field=Field(namespace="attributes", key="experiment"),
            op="in",
            values=tuple(names),
        )
        from lockstep.core.query import BoolOp

        where = in_experiments if node is None else BoolOp(op="and", items=(in_experiments, node))
        offset = _page(body.get("page_token"))
        found = self.meta.search(
            where=where, sort=order, limit=limit + 1, offset=offset, conditions=conditions
        )
        page = found[:limit]
        ids = [r.id for r in page]
        run_stages = self.records.run_stages(ids)
        inputs = self.records.inputs(ids)
        answer: dict[str, Any] = {
            "runs": [
                self._run_json(
                    r,
                    stage=run_stages.get(r.id, "active"),
                    inputs=inputs.get(r.id, []),
                    experiment_ids=names,
                )
                for r in page
            ]
        }
        if len(found) > limit:
            answer["next_page_token"] = str(offset + limit)
        return answer

    # logging -----------------------------------------------------------------------

    def _active_run_id(self, body: Mapping[str, Any]) -> str:
        """The id of an active run, checked in one query (the metric path loads no run)."""
        value = body.get("run_id") or body.get("run_uuid")
        if not isinstance(value, str):
            raise _invalid("Missing value for required parameter 'run_id'.")
        try:
            run_id = validate.run_id(value)
        except InvalidValue:
            raise _missing(f"Run '{value[:40]}' not found") from None
        stage = self.records.run_stage(run_id)
        if stage is None:
            raise _missing(f"Run '{run_id}' not found")
        if stage != "active":
            raise MlflowApiError(
                "INVALID_STATE",
                f"The run {run_id} must be in the 'active' state. Current state is {stage}.",
            )
        return run_id

    def log_metric(self, body: dict[str, Any]) -> dict[str, Any]:
        self._append(self._active_run_id(body), [body])
        return {}

    def log_param(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        self._params(record, [{"key": body.get("key"), "value": body.get("value")}])
        return {}

    def set_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        tags = _pairs([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        self._tags(record, tags)
        return {}

    def delete_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        key = _key(body.get("key"), "key")
        if key not in record.tags:
            raise _missing(f"No tag with name: {key} in run with id {record.id}")
        self.meta.delete_tag(record.id, key)
        return {}

    def log_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        metrics, params = _list(body, "metrics"), _list(body, "params")
        tags = _list(body, "tags")
        for items, most, what in (
            (metrics, MAX_BATCH_METRICS, "metrics"),
            (params, MAX_BATCH_PARAMS, "params"),
            (tags, MAX_BATCH_TAGS, "tags"),
        ):
            if len(items) > most:
                raise _invalid(
                    f"A batch logging request can contain at most {most} {what}. "
                    f"Got {len(items)} {what}. Please split up {what} across multiple requests."
                )
        if len(metrics) + len(params) + len(tags) > MAX_BATCH_TOTAL:
            raise _invalid(
                f"A batch logging request can contain at most {MAX_BATCH_TOTAL} metrics, params "
                "and tags in total."
            )
        if not params and not tags:
            self._append(self._active_run_id(body), metrics)
            return {}
        record = self._active_run(body)
        if params:
            self._params(record, params)
        if tags:
            self._tags(record, _pairs(tags, "tags"))
        if metrics:
            self._append(record.id, metrics)
        return {}

    def _params(self, record: RunRecord, items: list[Any]) -> None:
        """Params are immutable, as MLflow enforces: the same value again is fine."""
        given: dict[str, str] = {}
        for item in items:
            if not isinstance(item, dict):
                raise _invalid("params must be a list of {key, value}")
            key = _key(item.get("key"), "param key")
            value = item.get("value")
            text = "" if value is None else str(value)
            if len(text) > MAX_PARAM_LENGTH or "\x00" in text:
                raise _invalid(f"Param value for {key!r} is longer than {MAX_PARAM_LENGTH}")
            if key in given and given[key] != text:
                raise _invalid(f"Duplicate parameter keys have been submitted: [{key!r}]")
            given[key] = text
        for key, text in given.items():
            if key in record.params and _param_text(record.params[key]) != text:
                raise _invalid(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{_param_text(record.params[key])}' for run "
                    f"ID='{record.id}'. Attempted logging new value '{text}'."
                )
        fresh = {k: v for k, v in given.items() if k not in record.params}
        if fresh:
            # MLflow's keys stay whole (a dot is no nesting) and its values are text.
            self.meta.log_params(record.id, fresh)

    def _tags(self, record: RunRecord, tags: dict[str, str]) -> None:
        self.meta.set_tags(record.id, tags)
        if "mlflow.runName" in tags:
            self.records.rename_run(record.id, tags["mlflow.runName"])
        if any(t in tags for t in _SOURCE_TAGS):
            self._fill_sections(record.id, tags, record.sections)

    def _append(self, run_id: str, items: list[Any]) -> None:
        import numpy as np

        series: dict[str, tuple[list[int], list[float], list[float]]] = {}
        now = time.time()
        for item in items:
            if not isinstance(item, dict):
                raise _invalid("metrics must be a list of {key, value, timestamp, step}")
            key = _key(item.get("key"), "metric key")
            value = _float(item.get("value"), "value")
            stamp = _int(item, "timestamp")
            step = _int(item, "step", 0) or 0
            steps, values, times = series.setdefault(key, ([], [], []))
            steps.append(step)
            values.append(value)
            times.append(stamp / 1000.0 if stamp is not None else now)
        self.meta.append_series(
            run_id,
            {
                k: (np.array(s, dtype=np.int64), np.array(v, dtype=np.float64), np.array(t))
                for k, (s, v, t) in series.items()
            },
            now,
        )

    def log_inputs(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        found = []
        for item in _list(body, "datasets"):
            if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
                raise _invalid("datasets must be a list of {dataset, tags}")
            dataset = item["dataset"]
            tags = _pairs(item.get("tags"), "dataset tags")
            name = _text(dataset, "name", limit=500)
            digest = _text(dataset, "digest", limit=128)
            for field in ("source_type", "source", "schema", "profile"):
                _text(dataset, field, required=False, limit=1 << 20)
            found.append(
                {
                    "name": name,
                    "digest": digest,
                    "context": tags.get("mlflow.data.context", ""),
                    "doc": {
                        "tags": [{"key": k, "value": v} for k, v in tags.items()],
                        "dataset": {
                            k: dataset[k]
                            for k in (
                                "name",
                                "digest",
                                "source_type",
                                "source",
                                "schema",
                                "profile",
                            )
                            if k in dataset
                        },
                    },
                }
            )
        if found:
            self.records.add_inputs(record.id, found)
            self._link_local_sources(record, found)
        return {}

    def _link_local_sources(self, record: RunRecord, found: list[dict[str, Any]]) -> None:
        """A dataset whose source is a file in this project becomes one of the run's inputs,
        by content (only where the files are: a local store, not a server)."""
        import json
        from pathlib import Path

        from lockstep.core.records import Artifact
        from lockstep.objects.hashing import hash_file

        if self.pid <= 0:
            return
        root = self.workspace.project_root.resolve()
        inputs = []
        for item in found:
            try:
                source = json.loads(item["doc"]["dataset"].get("source") or "{}")
            except ValueError:
                continue
            uri = (
                str(source.get("uri") or source.get("path") or "")
                if isinstance(source, dict)
                else ""
            )
            path = (
                Path(uri.removeprefix("file://"))
                if uri and "://" not in uri.removeprefix("file://")
                else None
            )
            if path is None:
                continue
            resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
            if not resolved.is_file() or not resolved.is_relative_to(root):
                continue
            digest, size = hash_file(resolved)
            inputs.append(
                Artifact(
                    path=resolved.relative_to(root).as_posix(),
                    digest=digest,
                    size=size,
                    kind="input",
                )
            )
        if inputs:
            self.meta.add_artifacts(record.id, inputs)

    def log_outputs(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        models = []
        for item in _list(body, "models"):
            if not isinstance(item, dict):
                raise _invalid("models must be a list of {model_id, step}")
            models.append(
                {"model_id": _text(item, "model_id", limit=64), "step": _int(item, "step", 0)}
            )
        outputs = list(record.sections.get("mlflow_outputs") or [])
        outputs += [m for m in models if m not in outputs]
        self.meta.set_sections(record.id, {"mlflow_outputs": outputs})
        return {}

    def log_model(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        model_json = _text(body, "model_json", limit=1 << 20)
        history = record.tags.get("mlflow.log-model.history", "[]")
        import json

        try:
            entries = json.loads(history)
            entries.append(json.loads(model_json))
        except ValueError:
            raise _invalid("model_json is not valid JSON") from None
        self.meta.set_tags(record.id, {"mlflow.log-model.history": json.dumps(entries)})
        return {}

    # metric histories ----------------------------------------------------------------

    def _history(self, run_id: str, key: str) -> Any:
        from lockstep.tracking.history import MetricHistory

        return MetricHistory.from_chunks(key, self.meta.metric_chunks(run_id, key))

    def get_metric_history(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._run(body)
        key = _key(body.get("metric_key"), "metric_key", limit=500)
        series = self._history(record.id, key)
        start = _page(body.get("page_token"))
        limit = _int(body, "max_results") or len(series)
        if limit <= 0:
            raise _invalid("max_results must be positive")
        end = min(len(series), start + limit)
        steps = series.steps[start:end].tolist()
        values = series.values[start:end].tolist()
        times = (series.times[start:end] * 1000).round().astype("int64").tolist()
        answer: dict[str, Any] = {
            "metrics": [
                {"key": key, "value": _number(v), "timestamp": t, "step": s}
                for s, v, t in zip(steps, values, times, strict=True)
            ]
        }
        if end < len(series):
            answer["next_page_token"] = str(end)
        return answer

    def get_metric_history_bulk_interval(self, body: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        run_ids = _list(body, "run_ids")
        if not run_ids or len(run_ids) > 100:
            raise _invalid("run_ids must name 1 to 100 runs")
        key = _key(body.get("metric_key"), "metric_key", limit=500)
        limit = _int(body, "max_results", 320) or 320
        if not 0 < limit <= 1000:
            raise _invalid("max_results must be between 1 and 1000")
        low, high = _int(body, "start_step"), _int(body, "end_step")
        found: list[dict[str, Any]] = []
        for raw in run_ids:
            record = self._run({"run_id": raw})
            series = self._history(record.id, key)
            steps, values, times = series.steps, series.values, series.times
            if low is not None or high is not None:
                inside = np.ones(len(steps), dtype=bool)
                if low is not None:
                    inside &= steps >= low
                if high is not None:
                    inside &= steps <= high
                steps, values, times = steps[inside], values[inside], times[inside]
            if len(steps) > limit:
                # Evenly spaced points with the first and the last, as MLflow's charts want.
                index = np.unique(np.linspace(0, len(steps) - 1, limit).round().astype(np.int64))
                steps, values, times = steps[index], values[index], times[index]
            found += [
                {
                    "key": key,
                    "value": _number(v),
                    "timestamp": round(t * 1000),
                    "step": int(s),
                    "run_id": record.id,
                }
                for s, v, t in zip(steps.tolist(), values.tolist(), times.tolist(), strict=True)
            ]
        found.sort(key=lambda m: (m["run_id"], m["step"], m["timestamp"]))
        return {"metrics": found}

    # artifacts -------------------------------------------------------------------------

    def list_artifacts(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.mlflow import artifacts

        record = self._run(body)
        root = f"runs/{record.id}/artifacts"
        inner = _text(body, "path", required=False, limit=1000).strip("/")
        files = artifacts.listing(self.records, root, inner)
        return {"root_uri": f"{self.artifact_scheme}:/{root}", "files": files}

    # logged models (MLflow 3) ----------------------------------------------------------

    def _logged_model(self, model_id: str) -> dict[str, Any]:
        if not re.fullmatch(r"m-[0-9a-f]{32}", model_id):
            raise _missing(f"Logged model with ID '{model_id[:40]}' not found.")
        found = self.records.logged_model(model_id)
        if found is None:
            raise _missing(f"Logged model with ID '{model_id}' not found.")
        return found

    def _store_logged_model(self, doc: dict[str, Any]) -> None:
        info = doc["info"]
        self.records.put_logged_model(
            model_id=info["model_id"],
            experiment_id=self._experiment_id(info["experiment_id"]),
            name=info["name"],
            source_run_id=info.get("source_run_id") or None,
            creation_time=info["creation_timestamp_ms"] / 1000.0,
            doc=doc,
        )

    def create_logged_model(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(_text(body, "experiment_id"))
        row = self._experiment_row(experiment_id)
        model_id = f"m-{secrets.token_hex(16)}"
        now = _ms(time.time())
        source_run = _text(body, "source_run_id", required=False, limit=64)
        if source_run:
            source_run = self._run({"run_id": source_run}).id
        name = _text(body, "name", required=False, limit=500) or model_id
        info: dict[str, Any] = {
            "model_id": model_id,
            "experiment_id": "0" if row.name == DEFAULT_EXPERIMENT else str(row.id),
            "name": name,
            "artifact_uri": f"{self.artifact_scheme}:/models/{model_id}/artifacts",
            "creation_timestamp_ms": now,
            "last_updated_timestamp_ms": now,
            "model_type": _text(body, "model_type", required=False, limit=500),
            "source_run_id": source_run,
            "status": "LOGGED_MODEL_PENDING",
            "tags": [{"key": k, "value": v} for k, v in _pairs(body.get("tags"), "tags").items()],
        }
        doc = {
            "info": info,
            "data": {
                "params": [
                    {"key": k, "value": v} for k, v in _pairs(body.get("params"), "params").items()
                ],
                "metrics": [],
            },
        }
        self._store_logged_model(doc)
        return {"model": doc}

    def get_logged_model(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"model": self._logged_model(str(body.get("model_id", "")))}

    def finalize_logged_model(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        status = str(body.get("status") or "")
        if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", "1", "2", "3"):
            raise _invalid(f"Invalid logged model status {status!r}")
        doc["info"]["status"] = {"2": "LOGGED_MODEL_READY", "3": "LOGGED_MODEL_UPLOAD_FAILED"}.get(
            status, status
        )
        doc["info"]["last_updated_timestamp_ms"] = _ms(time.time())
        self._store_logged_model(doc)
        return {"model": doc}

    def delete_logged_model(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        self.records.delete_logged_model(doc["info"]["model_id"])
        return {}

    def set_logged_model_tags(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        tags = {t["key"]: t["value"] for t in doc["info"].get("tags", [])}
        tags.update(_pairs(body.get("tags"), "tags"))
        doc["info"]["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        self._store_logged_model(doc)
        return {}

    def delete_logged_model_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        key = str(body.get("tag_key", ""))
        doc["info"]["tags"] = [t for t in doc["info"].get("tags", []) if t["key"] != key]
        self._store_logged_model(doc)
        return {}

    def log_logged_model_params(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        params = {p["key"]: p["value"] for p in doc["data"].get("params", [])}
        params.update(_pairs(body.get("params"), "params"))
        doc["data"]["params"] = [{"key": k, "value": v} for k, v in params.items()]
        self._store_logged_model(doc)
        return {}

    def search_logged_models(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = [self._experiment_id(e) for e in _list(body, "experiment_ids")]
        models = self.records.logged_models(ids)
        for clause in search.parse_clauses(_text(body, "filter", required=False, limit=10_000)):
            models = [m for m in models if _logged_model_matches(m, clause)]
        limit = _int(body, "max_results", 100) or 100
        start = _page(body.get("page_token"))
        answer: dict[str, Any] = {"models": models[start : start + limit]}
        if start + limit < len(models):
            answer["next_page_token"] = str(start + limit)
        return answer

    def list_logged_model_artifacts(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.mlflow import artifacts

        doc = self._logged_model(str(body.get("model_id", "")))
        root = f"models/{doc['info']['model_id']}/artifacts"
        inner = _text(body, "artifact_directory_path", required=False).strip("/")
        return {
            "root_uri": f"{self.artifact_scheme}:/{root}",
            "files": artifacts.listing(self.records, root, inner),
        }

    # the model registry ----------------------------------------------------------------

    def _model_name(self, body: Mapping[str, Any], field: str = "name") -> str:
        name = _text(body, field, limit=255)
        try:
            return validate.name(name, "registered model name")
        except InvalidValue as exc:
            raise _invalid(str(exc)) from None

    def _model_id(self, name: str) -> int:
        found = self.records.model_ids([name]).get(name)
        if found is None:
            raise _missing(f"Registered Model with name={name} not found")
        return found[0]

    def _versions(self, name: str) -> list[ModelVersion]:
        """The versions of a model, oldest first ([] for one registered without any)."""
        try:
            return self.workspace.model_records().versions(name)
        except ModelNotFound:
            return []

    def _version(self, name: str, version: Any) -> ModelVersion:
        text = str(version[0] if isinstance(version, list) and len(version) == 1 else version)
        for found in self._versions(name):
            if str(found.number) == text:
                return found
        raise _missing(f"Model Version (name={name}, version={text[:20]}) not found")

    def _version_json(
        self, version: ModelVersion, extras: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        extra = (
            extras
            if extras is not None
            else self.records.version_extras([version.id]).get(version.id, {})
        )
        source = (
            extra.get("source")
            or f"{self.artifact_scheme}:/registry/{version.model}/{version.number}"
        )
        answer: dict[str, Any] = {
            "name": version.model,
            "version": str(version.number),
            "creation_timestamp": _ms(version.created_at),
            "last_updated_timestamp": _ms(extra.get("last_updated") or version.created_at),
            "current_stage": extra.get("stage") or "None",
            "description": version.message,
            "source": source,
            "run_id": version.run_id or "",
            "status": "READY",
            "tags": [{"key": k, "value": v} for k, v in sorted(version.tags.items())],
            "aliases": list(version.aliases),
        }
        if version.created_by:
            answer["user_id"] = version.created_by
        if extra.get("model_id"):
            answer["model_id"] = extra["model_id"]
        return answer

    def _registered_json(self, name: str, model_id: int, created: float) -> dict[str, Any]:
        description, tags, updated = self.records.registered([model_id]).get(
            model_id, ("", {}, created)
        )
        versions = self._versions(name)
        extras = self.records.version_extras([v.id for v in versions])
        newest = versions[-1:] if versions else []
        return {
            "name": name,
            "creation_timestamp": _ms(created),
            "last_updated_timestamp": _ms(max([updated, *(v.created_at for v in versions)])),
            "description": description,
            "latest_versions": [self._version_json(v, extras.get(v.id, {})) for v in newest],
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            "aliases": [
                {"alias": alias, "version": str(v.number)} for v in versions for alias in v.aliases
            ],
        }

    def create_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        model_id, created = self.records.create_model(name, time.time())
        if not created:
            raise MlflowApiError(
                "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists."
            )
        self.records.update_registered(
            model_id,
            description=_text(body, "description", required=False, limit=100_000),
            set_tags=_pairs(body.get("tags"), "tags"),
        )
        return {"registered_model": self._registered_json(name, model_id, time.time())}

    def get_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        model_id, created = self.records.model_ids([name]).get(name) or (None, 0.0)
        if model_id is None:
            raise _missing(f"Registered Model with name={name} not found")
        return {"registered_model": self._registered_json(name, model_id, created)}

    def rename_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        new_name = self._model_name(body, "new_name")
        model_id = self._model_id(name)
        if self.records.model_ids([new_name]):
            raise MlflowApiError(
                "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={new_name}) already exists."
            )
        self.records.rename_model(model_id, new_name)
        return self.get_registered_model({"name": new_name})

    def update_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        self.records.update_registered(
            self._model_id(name),
            description=_text(body, "description", required=False, limit=100_000),
        )
        return self.get_registered_model({"name": name})

    def delete_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        self.records.delete_model(self._model_id(self._model_name(body)))
        return {}

    def search_registered_models(self, body: dict[str, Any]) -> dict[str, Any]:
        models = self.records.model_ids()
        found = [self._registered_json(n, i, c) for n, (i, c) in models.items()]
        for clause in search.parse_clauses(_text(body, "filter", required=False, limit=10_000)):
            found = [m for m in found if _registered_matches(m, clause)]
        limit = _int(body, "max_results", 100) or 100
        start = _page(body.get("page_token"))
        answer: dict[str, Any] = {"registered_models": found[start : start + limit]}
        if start + limit < len(found):
            answer["next_page_token"] = str(start + limit)
        return answer

    def get_latest_versions(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        self._model_id(name)
        versions = self._versions(name)
        extras = self.records.version_extras([v.id for v in versions])
        stages = [str(s) for s in _list(body, "stages")]
        latest: dict[str, ModelVersion] = {}
        for version in versions:
            latest[extras.get(version.id, {}).get("stage") or "None"] = version
        return {
            "model_versions": [
                self._version_json(v, extras.get(v.id, {}))
                for stage, v in latest.items()
                if not stages or stage in stages
            ]
        }

    def set_registered_model_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        tags = _pairs([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        self.records.update_registered(self._model_id(name), set_tags=tags)
        return {}

    def delete_registered_model_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        self.records.update_registered(
            self._model_id(name), delete_tag=_key(body.get("key"), "key")
        )
        return {}

    def create_model_version(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.mlflow import artifacts
        from lockstep.models.registry import ModelRegistry
        from lockstep.objects import guard

        name = self._model_name(body)
        source = _text(body, "source", limit=2000)
        run_id = _text(body, "run_id", required=False, limit=64) or None
        if run_id is not None:
            run_id = self._run({"run_id": run_id}).id
        logged = _text(body, "model_id", required=False, limit=64) or None
        if logged is None and re.fullmatch(r"models:/m-[0-9a-f]{32}/?", source):
            logged = source.removeprefix("models:/").strip("/")
        if logged is not None:
            # A logged model's version comes from the run that logged it.
            run_id = run_id or self._logged_model(logged)["info"].get("source_run_id") or None
        self.records.create_model(name, time.time())
        entries, _ = artifacts.source_files(self.records, source, self.artifact_scheme)
        registry = ModelRegistry(self.workspace)
        message = _text(body, "description", required=False, limit=100_000)
        with guard.writing(self.workspace.objects.root):
            if not entries:
                # A source outside this store (s3://, a path on the client): the version
                # holds its address, so two such versions differ by what they point at.
                from lockstep.meta.datasets import FileEntry

                pointer = self.workspace.objects.put_bytes(source.encode())
                entries = [
                    FileEntry(
                        path="MLFLOW_SOURCE", digest=pointer.digest, size=len(source), mode=0o644
                    )
                ]
            version, _ = registry.record_version(
                name, entries, run_id=run_id, message=message, created_by=self.user
            )
        self.records.set_version_extras(version.id, source=source, model_id=logged)
        tags = _pairs(body.get("tags"), "tags")
        records = self.workspace.model_records()
        for key, value in tags.items():
            records.set_tag(version, key, value)
        return {"model_version": self._version_json(self._version(name, version.number))}

    def get_model_version(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        return {"model_version": self._version_json(self._version(name, body.get("version")))}

    def update_model_version(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        description = body.get("description")
        if description is not None:
            self.records.set_version_message(
                version.id, _text(body, "description", required=False, limit=100_000)
            )
        return {"model_version": self._version_json(self._version(name, version.number))}

    def transition_model_version_stage(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        stage = _text(body, "stage", limit=32)
        canonical = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}.get(
            stage.lower()
        )
        if canonical is None:
            raise _invalid(f"Invalid Model Version stage: {stage}")
        extra = self.records.version_extras([version.id]).get(version.id, {})
        if str(body.get("archive_existing_versions", "")).lower() == "true" and canonical in (
            "Staging",
            "Production",
        ):
            for other in self._versions(name):
                other_extra = self.records.version_extras([other.id]).get(other.id, {})
                if other.id != version.id and other_extra.get("stage") == canonical:
                    self.records.set_version_extras(
                        other.id,
                        source=other_extra.get("source", ""),
                        model_id=other_extra.get("model_id"),
                        stage="Archived",
                    )
        self.records.set_version_extras(
            version.id,
            source=extra.get("source", ""),
            model_id=extra.get("model_id"),
            stage=canonical,
        )
        return {"model_version": self._version_json(self._version(name, version.number))}

    def delete_model_version(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        records = self.workspace.model_records()
        for alias in version.aliases:
            self._move_alias(name, alias, None)
        records.delete_version(self._version(name, version.number))
        return {}

    def search_model_versions(self, body: dict[str, Any]) -> dict[str, Any]:
        found = []
        for name in self.records.model_ids():
            versions = self._versions(name)
            extras = self.records.version_extras([v.id for v in versions])
            found += [self._version_json(v, extras.get(v.id, {})) for v in versions]
        for clause in search.parse_clauses(_text(body, "filter", required=False, limit=10_000)):
            found = [v for v in found if _version_matches(v, clause)]
        found.sort(key=lambda v: (v["name"], -int(v["version"])))
        limit = _int(body, "max_results", 10_000) or 10_000
        start = _page(body.get("page_token"))
        answer: dict[str, Any] = {"model_versions": found[start : start + limit]}
        if start + limit < len(found):
            answer["next_page_token"] = str(start + limit)
        return answer

    def get_model_version_download_uri(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.mlflow import artifacts

        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        extra = self.records.version_extras([version.id]).get(version.id, {})
        source = extra.get("source", "")
        _, root = artifacts.source_files(self.records, source, self.artifact_scheme)
        return {"artifact_uri": f"{self.artifact_scheme}:/{root}" if root is not None else source}

    def set_model_version_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        tags = _pairs([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        for key, value in tags.items():
            self.workspace.model_records().set_tag(version, key, value)
        return {}

    def delete_model_version_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        self.records.delete_version_tag(version.id, _key(body.get("key"), "key"))
        return {}

    def _move_alias(self, name: str, alias: str, number: int | None) -> None:
        from lockstep.models.registry import ModelRegistry

        registry = ModelRegistry(self.workspace)
        if number is None:
            registry.delete_alias(name, alias)
        else:
            registry.move_alias(self._version(name, number), alias, note="set through MLflow's API")

    def _alias(self, body: Mapping[str, Any]) -> str:
        alias = _text(body, "alias", limit=128)
        try:
            return validate.alias(alias)
        except InvalidValue as exc:
            raise _invalid(str(exc)) from None

    def set_registered_model_alias(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        number = self._version(name, body.get("version")).number
        self._move_alias(name, self._alias(body), number)
        return {}

    def delete_registered_model_alias(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        self._model_id(name)
        self._move_alias(name, self._alias(body), None)
        return {}

    def get_model_version_by_alias(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        alias = self._alias(body)
        for version in self._versions(name):
            if alias in version.aliases:
                return {"model_version": self._version_json(version)}
        raise _missing(f"Registered model alias {alias} not found.")


def _compare(value: Any, op: str, wanted: tuple[Any, ...]) -> bool:
    """One clause on a value in Python (experiments and registry lists are short)."""
    import fnmatch

    if op == "isnull":
        return value is None
    if op == "notnull":
        return value is not None
    if value is None:
        return False
    if op in ("like", "ilike"):
        pattern = str(wanted[0]).replace("%", "*").replace("_", "?")
        text = str(value)
        if op == "ilike":
            return fnmatch.fnmatchcase(text.lower(), pattern.lower())
        return fnmatch.fnmatchcase(text, pattern)
    if op == "in":
        return str(value) in {str(w) for w in wanted}
    if op == "notin":
        return str(value) not in {str(w) for w in wanted}
    target = wanted[0]
    if isinstance(target, int | float) and not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
    elif not isinstance(target, int | float):
        value, target = str(value), str(target)
    try:
        return bool(
            {
                "=": value == target,
                "!=": value != target,
                "<": value < target,
                "<=": value <= target,
                ">": value > target,
                ">=": value >= target,
            }[op]
        )
    except TypeError:
        return False


def _tag(items: list[dict[str, Any]], key: str) -> Any:
    return next((t["value"] for t in items if t["key"] == key), None)


def _experiment_matches(row: dict[str, Any], clause: search.Clause) -> bool:
    if clause.namespace == "tags":
        return _compare(_tag(row["tags"], clause.key), clause.op, clause.values)
    if clause.key not in ("name", "creation_time", "last_update_time", "experiment_id"):
        raise _invalid(f"Invalid attribute key {clause.key!r} for experiments")
    return _compare(row[clause.key], clause.op, clause.values)


def _registry_tag(row: dict[str, Any], clause: search.Clause) -> bool:
    """A registry tag clause: MLflow's client filters prompts out with ``!=``, which a
    model without the tag passes."""
    value = _tag(row["tags"], clause.key)
    if value is None and clause.op in ("!=", "notin"):
        return True
    return _compare(value, clause.op, clause.values)


def _registered_matches(row: dict[str, Any], clause: search.Clause) -> bool:
    if clause.namespace == "tags":
        return _registry_tag(row, clause)
    if clause.key not in ("name",):
        raise _invalid(f"Invalid attribute key {clause.key!r} for registered models")
    return _compare(row["name"], clause.op, clause.values)


def _version_matches(row: dict[str, Any], clause: search.Clause) -> bool:
    if clause.namespace == "tags":
        return _registry_tag(row, clause)
    key = {"version_number": "version"}.get(clause.key, clause.key)
    if key not in ("name", "version", "run_id", "source", "model_id", "current_stage"):
        raise _invalid(f"Invalid attribute key {clause.key!r} for model versions")
    value = row.get(key)
    if key == "version":
        value = int(str(value))
    return _compare(value, clause.op, clause.values)


def _logged_model_matches(model: dict[str, Any], clause: search.Clause) -> bool:
    info = model["info"]
    if clause.namespace == "tags":
        return _compare(_tag(info.get("tags", []), clause.key), clause.op, clause.values)
    if clause.namespace == "params":
        return _compare(_tag(model["data"].get("params", []), clause.key), clause.op, clause.values)
    if clause.namespace == "metrics":
        value = next(
            (m["value"] for m in model["data"].get("metrics", []) if m["key"] == clause.key), None
        )
        return _compare(value, clause.op, clause.values)
    key = {
        "model_id": "model_id",
        "name": "name",
        "status": "status",
        "source_run_id": "source_run_id",
        "creation_time": "creation_timestamp_ms",
        "model_type": "model_type",
    }.get(clause.key)
    if key is None:
        raise _invalid(f"Invalid attribute key {clause.key!r} for logged models")
    return _compare(info.get(key), clause.op, clause.values)


# (method, path after /api/2.0/mlflow/) -> the MlflowService method that answers it.
_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "experiments/create"): "create_experiment",
    ("GET", "experiments/get"): "get_experiment",
    ("GET", "experiments/get-by-name"): "get_experiment_by_name",
    ("POST", "experiments/search"): "search_experiments",
    ("GET", "experiments/search"): "search_experiments",
    ("POST", "experiments/update"): "update_experiment",
    ("POST", "experiments/delete"): "delete_experiment",
    ("POST", "experiments/restore"): "restore_experiment",
    ("POST", "experiments/set-experiment-tag"): "set_experiment_tag",
    ("POST", "experiments/delete-experiment-tag"): "delete_experiment_tag",
    ("POST", "runs/create"): "create_run",
    ("POST", "runs/update"): "update_run",
    ("POST", "runs/delete"): "delete_run",
    ("POST", "runs/restore"): "restore_run",
    ("GET", "runs/get"): "get_run",
    ("POST", "runs/search"): "search_runs",
    ("POST", "runs/log-metric"): "log_metric",
    ("POST", "runs/log-parameter"): "log_param",
    ("POST", "runs/set-tag"): "set_tag",
    ("POST", "runs/delete-tag"): "delete_tag",
    ("POST", "runs/log-batch"): "log_batch",
    ("POST", "runs/log-inputs"): "log_inputs",
    ("POST", "runs/outputs"): "log_outputs",
    ("POST", "runs/log-model"): "log_model",
    ("GET", "metrics/get-history"): "get_metric_history",
    ("GET", "metrics/get-history-bulk-interval"): "get_metric_history_bulk_interval",
    ("GET", "artifacts/list"): "list_artifacts",
    ("POST", "logged-models"): "create_logged_model",
    ("GET", "logged-models/{model_id}"): "get_logged_model",
    ("PATCH", "logged-models/{model_id}"): "finalize_logged_model",
    ("DELETE", "logged-models/{model_id}"): "delete_logged_model",
    ("POST", "logged-models/search"): "search_logged_models",
    ("PATCH", "logged-models/{model_id}/tags"): "set_logged_model_tags",
    ("DELETE", "logged-models/{model_id}/tags/{tag_key}"): "delete_logged_model_tag",
    ("POST", "logged-models/{model_id}/params"): "log_logged_model_params",
    ("GET", "logged-models/{model_id}/artifacts/directories"): "list_logged_model_artifacts",
    ("POST", "registered-models/create"): "create_registered_model",
    ("POST", "registered-models/rename"): "rename_registered_model",
    ("PATCH", "registered-models/update"): "update_registered_model",
    ("DELETE", "registered-models/delete"): "delete_registered_model",
    ("GET", "registered-models/get"): "get_registered_model",
    ("GET", "registered-models/search"): "search_registered_models",
    ("POST", "registered-models/get-latest-versions"): "get_latest_versions",
    ("GET", "registered-models/get-latest-versions"): "get_latest_versions",
    ("POST", "registered-models/set-tag"): "set_registered_model_tag",
    ("DELETE", "registered-models/delete-tag"): "delete_registered_model_tag",
    ("POST", "registered-models/alias"): "set_registered_model_alias",
    ("DELETE", "registered-models/alias"): "delete_registered_model_alias",
    ("GET", "registered-models/alias"): "get_model_version_by_alias",
    ("POST", "model-versions/create"): "create_model_version",
    ("GET", "model-versions/get"): "get_model_version",
    ("PATCH", "model-versions/update"): "update_model_version",
    ("POST", "model-versions/transition-stage"): "transition_model_version_stage",
    ("DELETE", "model-versions/delete"): "delete_model_version",
    ("GET", "model-versions/search"): "search_model_versions",
    ("GET", "model-versions/get-download-uri"): "get_model_version_download_uri",
    ("POST", "model-versions/set-tag"): "set_model_version_tag",
    ("DELETE", "model-versions/delete-tag"): "delete_model_version_tag",
}


def lockstep_error(exc: LockstepError) -> MlflowApiError:
    """Any other lockstep error as MLflow's client expects to see it."""
    if isinstance(exc, MlflowApiError):
        return exc
    if isinstance(exc, LookupError):
        return _missing(str(exc))
    if isinstance(exc, UsageError):
        return _invalid(str(exc))
    return MlflowApiError("INTERNAL_ERROR", str(exc))

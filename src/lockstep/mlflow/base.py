"""What every group of MLflow endpoints shares: the workspace it answers over, and the
lookups of experiments and runs from MLflow's ids."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lockstep.core import validate
from lockstep.errors import InvalidValue, MlflowApiError, RunNotFound
from lockstep.mlflow.values import DEFAULT_EXPERIMENT, invalid, millis, missing

if TYPE_CHECKING:
    from lockstep.core.records import RunRecord
    from lockstep.workspace import Workspace


class Endpoints:
    """The workspace and the lookups the endpoints share."""

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
        # That run's id: its command ends it, not MLflow's end_run.
        self.launcher_run_id: str | None = None

    # dispatch ----------------------------------------------------------------------

    def _experiment_id(self, value: Any) -> int:
        text = str(value[0] if isinstance(value, list) and len(value) == 1 else value)
        if text == "0":
            return self._default_experiment()
        if not text.isdigit() or len(text) > 12:
            raise missing(f"Could not find experiment with ID {text[:40]}")
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
            raise missing(f"No Experiment with id={experiment_id} exists")
        return row

    def _experiment_json(self, row: Any) -> dict[str, Any]:
        default = row.name == DEFAULT_EXPERIMENT
        mlflow_id = "0" if default else str(row.id)
        return {
            "experiment_id": mlflow_id,
            "name": "Default" if default else row.name,
            "artifact_location": f"{self.artifact_scheme}:/experiments/{mlflow_id}",
            "lifecycle_stage": row.lifecycle_stage,
            "last_update_time": millis(row.last_update_time),
            "creation_time": millis(row.created_at),
            "tags": [{"key": k, "value": v} for k, v in sorted(row.tags.items())],
        }

    @staticmethod
    def _lockstep_name(name: str) -> str:
        return DEFAULT_EXPERIMENT if name == "Default" else name

    def _run(self, body: Mapping[str, Any], *, field: str = "run_id") -> RunRecord:
        value = body.get(field) or body.get("run_uuid")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise invalid(f"Missing value for required parameter '{field}'.")
        try:
            run_id = validate.run_id(value)
        except InvalidValue:
            raise missing(f"Run '{value[:40]}' not found") from None
        try:
            return self.meta.get_run(run_id)
        except RunNotFound:
            raise missing(f"Run '{run_id}' not found") from None

    def _active_run(self, body: Mapping[str, Any]) -> RunRecord:
        run = self._run(body)
        if self.records.run_stages([run.id]).get(run.id) == "deleted":
            raise MlflowApiError(
                "INVALID_STATE",
                f"The run {run.id} must be in the 'active' state. Current state is deleted.",
            )
        return run

    def _metric_run_id(self, body: Mapping[str, Any]) -> str:
        """The run id a metric write names, checked for its form only: whether the run
        exists and is active is checked in the write's own transaction (one round trip)."""
        value = body.get("run_id") or body.get("run_uuid")
        if not isinstance(value, str):
            raise invalid("Missing value for required parameter 'run_id'.")
        try:
            return validate.run_id(value)
        except InvalidValue:
            raise missing(f"Run '{value[:40]}' not found") from None

    def _require_active(self, run_id: str) -> Callable[[Any], None]:
        """A check, run inside a write's transaction, that the run exists and is active."""

        def check(connection: Any) -> None:
            stage = self.records.run_stage(run_id, connection)
            if stage is None:
                raise missing(f"Run '{run_id}' not found")
            if stage != "active":
                raise MlflowApiError(
                    "INVALID_STATE",
                    f"The run {run_id} must be in the 'active' state. Current state is {stage}.",
                )

        return check

    def _logged_model(self, model_id: str) -> dict[str, Any]:
        if not re.fullmatch(r"m-[0-9a-f]{32}", model_id):
            raise missing(f"Logged model with ID '{model_id[:40]}' not found.")
        found = self.records.logged_model(model_id)
        if found is None:
            raise missing(f"Logged model with ID '{model_id}' not found.")
        return found

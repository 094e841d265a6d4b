"""MLflow's tracking, logged-model and registry API over one lockstep workspace.

Each endpoint takes MLflow's request as a dict (a JSON body, or a GET's query) and returns
MLflow's response as a dict; what it refuses raises MlflowApiError with MLflow's error
code. The server's routes and the no-server plugin both call ``handle``, so the two speak
exactly the same API. MLflow runs are lockstep runs; experiments, models and aliases are
lockstep's own, with what MLflow needs beyond them in ``meta.mlflow_records``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lockstep.errors import (
    InvalidValue,
    LockstepError,
    MlflowApiError,
    ModelNotFound,
    PromotionRefused,
    RunNotFound,
    UsageError,
)
from lockstep.mlflow.logged_models import LoggedModelEndpoints
from lockstep.mlflow.registry import RegistryEndpoints
from lockstep.mlflow.tracking import TrackingEndpoints
from lockstep.mlflow.values import invalid, missing

if TYPE_CHECKING:
    pass


_ROUTE_PARAM = re.compile(r"\{(\w+)\}")


class MlflowService(TrackingEndpoints, LoggedModelEndpoints, RegistryEndpoints):
    """Every endpoint, on one workspace (a server's project, or a local store)."""

    def handle(self, method: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """MLflow's response to method on path (after ``/api/2.0/mlflow/``)."""
        handler, params = self.route(method, path)
        try:
            answer: dict[str, Any] = handler({**body, **params})
            return answer
        except MlflowApiError:
            raise
        except (RunNotFound, ModelNotFound) as exc:
            raise missing(str(exc)) from None
        except PromotionRefused as exc:
            raise MlflowApiError("INVALID_STATE", str(exc)) from None
        except (InvalidValue, UsageError) as exc:
            raise invalid(str(exc)) from None

    def route(
        self, method: str, path: str
    ) -> tuple[Callable[[dict[str, Any]], Any], dict[str, str]]:
        stripped = path.strip("/")
        fixed = _ROUTES.get((method, stripped))
        if fixed is not None and "{" not in stripped:
            return getattr(self, fixed), {}
        parts = stripped.split("/")
        for (verb, pattern), name in _ROUTES.items():
            if verb != method or "{" not in pattern:
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
        return missing(str(exc))
    if isinstance(exc, UsageError):
        return invalid(str(exc))
    return MlflowApiError("INTERNAL_ERROR", str(exc))

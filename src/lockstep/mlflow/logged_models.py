"""MLflow 3's logged models: created, finalised, tagged and searched; their files are
stored through the artifact proxy like a run's."""

from __future__ import annotations

import secrets
import time
from typing import Any

from lockstep.mlflow.base import Endpoints
from lockstep.mlflow.matching import filtered, logged_model_matches, page
from lockstep.mlflow.values import (
    DEFAULT_EXPERIMENT,
    field_list,
    field_text,
    invalid,
    key_values,
    millis,
)


class LoggedModelEndpoints(Endpoints):
    """Logged models."""

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
        experiment_id = self._experiment_id(field_text(body, "experiment_id"))
        row = self._experiment_row(experiment_id)
        model_id = f"m-{secrets.token_hex(16)}"
        now = millis(time.time())
        source_run = field_text(body, "source_run_id", required=False, limit=64)
        if source_run:
            source_run = self._run({"run_id": source_run}).id
        name = field_text(body, "name", required=False, limit=500) or model_id
        info: dict[str, Any] = {
            "model_id": model_id,
            "experiment_id": "0" if row.name == DEFAULT_EXPERIMENT else str(row.id),
            "name": name,
            "artifact_uri": f"{self.artifact_scheme}:/models/{model_id}/artifacts",
            "creation_timestamp_ms": now,
            "last_updated_timestamp_ms": now,
            "model_type": field_text(body, "model_type", required=False, limit=500),
            "source_run_id": source_run,
            "status": "LOGGED_MODEL_PENDING",
            "tags": [
                {"key": k, "value": v} for k, v in key_values(body.get("tags"), "tags").items()
            ],
        }
        doc = {
            "info": info,
            "data": {
                "params": [
                    {"key": k, "value": v}
                    for k, v in key_values(body.get("params"), "params").items()
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
            raise invalid(f"Invalid logged model status {status!r}")
        doc["info"]["status"] = {"2": "LOGGED_MODEL_READY", "3": "LOGGED_MODEL_UPLOAD_FAILED"}.get(
            status, status
        )
        doc["info"]["last_updated_timestamp_ms"] = millis(time.time())
        self._store_logged_model(doc)
        return {"model": doc}

    def delete_logged_model(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        self.records.delete_logged_model(doc["info"]["model_id"])
        return {}

    def set_logged_model_tags(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._logged_model(str(body.get("model_id", "")))
        tags = {t["key"]: t["value"] for t in doc["info"].get("tags", [])}
        tags.update(key_values(body.get("tags"), "tags"))
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
        params.update(key_values(body.get("params"), "params"))
        doc["data"]["params"] = [{"key": k, "value": v} for k, v in params.items()]
        self._store_logged_model(doc)
        return {}

    def search_logged_models(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = [self._experiment_id(e) for e in field_list(body, "experiment_ids")]
        models = filtered(self.records.logged_models(ids), body, logged_model_matches)
        return page(models, body, "models", 100)

    def list_logged_model_artifacts(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.mlflow import artifacts

        doc = self._logged_model(str(body.get("model_id", "")))
        root = f"models/{doc['info']['model_id']}/artifacts"
        inner = field_text(body, "artifact_directory_path", required=False).strip("/")
        return {
            "root_uri": f"{self.artifact_scheme}:/{root}",
            "files": artifacts.listing(self.records, root, inner),
        }

    # the model registry ----------------------------------------------------------------

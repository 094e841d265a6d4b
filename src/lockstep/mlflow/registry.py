"""MLflow's model registry on lockstep's: a registered model is a lockstep model, a model
version a lockstep version of the source's files by content, an alias a lockstep alias
(every move kept, and lockstep's promotion requirements apply)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lockstep.core import validate
from lockstep.errors import InvalidValue, MlflowApiError, ModelNotFound
from lockstep.mlflow.base import Endpoints
from lockstep.mlflow.matching import filtered, page, registered_matches, version_matches
from lockstep.mlflow.values import (
    checked_key,
    field_list,
    field_text,
    invalid,
    key_values,
    millis,
    missing,
)

if TYPE_CHECKING:
    from lockstep.meta.models import ModelVersion


class RegistryEndpoints(Endpoints):
    """Registered models, their versions and aliases."""

    def _model_name(self, body: Mapping[str, Any], field: str = "name") -> str:
        name = field_text(body, field, limit=255)
        try:
            return validate.name(name, "registered model name")
        except InvalidValue as exc:
            raise invalid(str(exc)) from None

    def _model_id(self, name: str) -> int:
        found = self.records.model_ids([name]).get(name)
        if found is None:
            raise missing(f"Registered Model with name={name} not found")
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
        raise missing(f"Model Version (name={name}, version={text[:20]}) not found")

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
            "creation_timestamp": millis(version.created_at),
            "last_updated_timestamp": millis(extra.get("last_updated") or version.created_at),
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
            "creation_timestamp": millis(created),
            "last_updated_timestamp": millis(max([updated, *(v.created_at for v in versions)])),
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
            description=field_text(body, "description", required=False, limit=100_000),
            set_tags=key_values(body.get("tags"), "tags"),
        )
        return {"registered_model": self._registered_json(name, model_id, time.time())}

    def get_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        model_id, created = self.records.model_ids([name]).get(name) or (None, 0.0)
        if model_id is None:
            raise missing(f"Registered Model with name={name} not found")
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
            description=field_text(body, "description", required=False, limit=100_000),
        )
        return self.get_registered_model({"name": name})

    def delete_registered_model(self, body: dict[str, Any]) -> dict[str, Any]:
        self.records.delete_model(self._model_id(self._model_name(body)))
        return {}

    def search_registered_models(self, body: dict[str, Any]) -> dict[str, Any]:
        models = self.records.model_ids()
        found = [self._registered_json(n, i, c) for n, (i, c) in models.items()]
        return page(filtered(found, body, registered_matches), body, "registered_models", 100)

    def get_latest_versions(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        self._model_id(name)
        versions = self._versions(name)
        extras = self.records.version_extras([v.id for v in versions])
        stages = [str(s) for s in field_list(body, "stages")]
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
        tags = key_values([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        self.records.update_registered(self._model_id(name), set_tags=tags)
        return {}

    def delete_registered_model_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        self.records.update_registered(
            self._model_id(name), delete_tag=checked_key(body.get("key"), "key")
        )
        return {}

    def create_model_version(self, body: dict[str, Any]) -> dict[str, Any]:
        from lockstep.mlflow import artifacts
        from lockstep.models.registry import ModelRegistry
        from lockstep.objects import guard

        name = self._model_name(body)
        source = field_text(body, "source", limit=2000)
        run_id = field_text(body, "run_id", required=False, limit=64) or None
        if run_id is not None:
            run_id = self._run({"run_id": run_id}).id
        logged = field_text(body, "model_id", required=False, limit=64) or None
        if logged is None and re.fullmatch(r"models:/m-[0-9a-f]{32}/?", source):
            logged = source.removeprefix("models:/").strip("/")
        if logged is not None:
            # A logged model's version comes from the run that logged it.
            run_id = run_id or self._logged_model(logged)["info"].get("source_run_id") or None
        self.records.create_model(name, time.time())
        entries, _ = artifacts.source_files(self.records, source, self.artifact_scheme)
        registry = ModelRegistry(self.workspace)
        message = field_text(body, "description", required=False, limit=100_000)
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
        tags = key_values(body.get("tags"), "tags")
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
                version.id, field_text(body, "description", required=False, limit=100_000)
            )
        return {"model_version": self._version_json(self._version(name, version.number))}

    def transition_model_version_stage(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        stage = field_text(body, "stage", limit=32)
        canonical = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}.get(
            stage.lower()
        )
        if canonical is None:
            raise invalid(f"Invalid Model Version stage: {stage}")
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
        found = filtered(found, body, version_matches)
        found.sort(key=lambda v: (v["name"], -int(v["version"])))
        return page(found, body, "model_versions", 10_000)

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
        tags = key_values([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        for key, value in tags.items():
            self.workspace.model_records().set_tag(version, key, value)
        return {}

    def delete_model_version_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._model_name(body)
        version = self._version(name, body.get("version"))
        self.records.delete_version_tag(version.id, checked_key(body.get("key"), "key"))
        return {}

    def _move_alias(self, name: str, alias: str, number: int | None) -> None:
        from lockstep.models.registry import ModelRegistry

        registry = ModelRegistry(self.workspace)
        if number is None:
            registry.delete_alias(name, alias)
        else:
            registry.move_alias(self._version(name, number), alias, note="set through MLflow's API")

    def _alias(self, body: Mapping[str, Any]) -> str:
        alias = field_text(body, "alias", limit=128)
        try:
            return validate.alias(alias)
        except InvalidValue as exc:
            raise invalid(str(exc)) from None

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
        raise missing(f"Registered model alias {alias} not found.")

"""MLflow's tracking endpoints: experiments, runs and what is logged to them, metric
histories and run artifact listings, as lockstep runs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lockstep.core.ids import new_run_id
from lockstep.core.status import RunStatus
from lockstep.errors import MlflowApiError
from lockstep.mlflow import search
from lockstep.mlflow.base import Endpoints
from lockstep.mlflow.matching import experiment_matches, filtered, page
from lockstep.mlflow.values import (
    DEFAULT_EXPERIMENT,
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    MAX_BATCH_TOTAL,
    MAX_PARAM_LENGTH,
    SOURCE_TAGS,
    STATUS_OUT,
    checked_key,
    field_float,
    field_int,
    field_list,
    field_text,
    invalid,
    json_number,
    key_values,
    millis,
    missing,
    page_start,
    param_text,
    search_scope,
)

if TYPE_CHECKING:
    from lockstep.core.records import RunRecord


class TrackingEndpoints(Endpoints):
    """Experiments, runs, logging, histories."""

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._lockstep_name(field_text(body, "name", limit=255))
        tags = key_values(body.get("tags"), "tags")
        experiment_id, created = self.records.create_experiment(name, tags, time.time())
        if not created:
            raise MlflowApiError(
                "RESOURCE_ALREADY_EXISTS", f"Experiment '{body['name']}' already exists."
            )
        return {"experiment_id": "0" if name == DEFAULT_EXPERIMENT else str(experiment_id)}

    def get_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        row = self._experiment_row(self._experiment_id(field_text(body, "experiment_id")))
        return {"experiment": self._experiment_json(row)}

    def get_experiment_by_name(self, body: dict[str, Any]) -> dict[str, Any]:
        name = field_text(body, "experiment_name", limit=255)
        if self._lockstep_name(name) == DEFAULT_EXPERIMENT:
            self._default_experiment()
        row = self.records.experiment(name=self._lockstep_name(name))
        if row is None and self.launcher_run_id is not None:
            # Inside `lockstep run` an experiment exists once named, as lockstep's own do:
            # a run and its rerun then find the same store (MLflow would say it creates
            # the experiment in one and not in the other, and verify would see that).
            experiment_id, _ = self.records.create_experiment(
                self._lockstep_name(name), {}, time.time()
            )
            row = self.records.experiment(id=experiment_id)
        if row is None:
            raise missing(f"Could not find experiment with name '{name}'")
        return {"experiment": self._experiment_json(row)}

    def search_experiments(self, body: dict[str, Any]) -> dict[str, Any]:
        stages, limit = search_scope(body, "view_type")
        self._default_experiment()
        rows = [self._experiment_json(r) for r in self.records.experiments(stages=stages)]
        rows = filtered(rows, body, experiment_matches)
        order = [str(o) for o in field_list(body, "order_by")] or ["creation_time DESC"]
        for item in reversed(order):
            field, _, direction = item.strip().partition(" ")
            field = field.removeprefix("attributes.").removeprefix("attribute.")
            if field not in ("name", "experiment_id", "creation_time", "last_update_time"):
                raise invalid(f"Invalid order_by field {field!r}")
            rows.sort(
                key=lambda r, f=field: int(r[f]) if f == "experiment_id" else r[f],  # type: ignore[misc]
                reverse=direction.strip().upper() == "DESC",
            )
        return page(rows, body, "experiments", limit)

    def update_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(field_text(body, "experiment_id"))
        row = self._experiment_row(experiment_id)
        name = field_text(body, "new_name", required=False, limit=255)
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
        experiment_id = self._experiment_id(field_text(body, "experiment_id"))
        row = self._experiment_row(experiment_id)
        if stage == "deleted" and row.name == DEFAULT_EXPERIMENT:
            raise invalid("Cannot delete the default experiment '0'.")
        self.records.update_experiment(experiment_id, stage=stage)
        return {}

    def set_experiment_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(field_text(body, "experiment_id"))
        self._experiment_row(experiment_id)
        tags = key_values([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        self.records.update_experiment(experiment_id, set_tags=tags)
        return {}

    def delete_experiment_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._experiment_id(field_text(body, "experiment_id"))
        self._experiment_row(experiment_id)
        self.records.update_experiment(
            experiment_id, delete_tag=checked_key(body.get("key"), "key")
        )
        return {}

    # runs --------------------------------------------------------------------------

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
        timestamp = millis(record.end_time or record.start_time)
        tags = dict(record.tags)
        tags.setdefault("mlflow.runName", record.name)
        info = {
            "run_id": record.id,
            "run_uuid": record.id,
            "run_name": record.name,
            "experiment_id": experiment_id,
            "user_id": tags.get("mlflow.user", ""),
            "status": STATUS_OUT.get(str(record.status), "FAILED"),
            "start_time": millis(record.start_time),
            "end_time": millis(record.end_time),
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
                        "value": json_number(s.last),
                        "timestamp": timestamp,
                        "step": s.last_step,
                    }
                    for key, s in sorted(record.metrics.items())
                ],
                "params": [
                    {"key": k, "value": param_text(v)} for k, v in sorted(record.params.items())
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
        tags = key_values(body.get("tags"), "tags")
        user = field_text(body, "user_id", required=False, limit=255) or self.user
        if user:
            tags.setdefault("mlflow.user", user)
        name = (
            field_text(body, "run_name", required=False, limit=250)
            or tags.get("mlflow.runName")
            or new_run_name()
        )
        tags["mlflow.runName"] = name
        started = field_int(body, "start_time")
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
        reported = {field: tags[tag] for tag, field in SOURCE_TAGS.items() if tags.get(tag)}
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
        name = field_text(body, "run_name", required=False, limit=250)
        if name:
            self.records.rename_run(record.id, name)
            self.meta.set_tags(record.id, {"mlflow.runName": name})
        status = body.get("status")
        if status is not None and not self._owned_by_launcher(record):
            lowered = search.STATUSES.get(str(status).upper())
            if lowered is None:
                raise invalid(f"Invalid run status {status!r}")
            end = field_int(body, "end_time")
            final = RunStatus(lowered).is_final
            self.records.set_run_status(
                record.id,
                lowered,
                (end / 1000.0 if end else time.time()) if final else None,
            )
        return {"run_info": self._run_json(self.meta.get_run(record.id))["info"]}

    def _owned_by_launcher(self, record: RunRecord) -> bool:
        """A run `lockstep run` recorded: that command ends it from the exit status."""
        return "command" in record.sections or record.id == self.launcher_run_id

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

        stages, limit = search_scope(body, "run_view_type")
        names: dict[str, str] = {}
        for raw in field_list(body, "experiment_ids"):
            row = self.records.experiment(id=self._experiment_id(raw))
            if row is not None:
                names[row.name] = "0" if row.name == DEFAULT_EXPERIMENT else str(row.id)
        if not names:
            return {"runs": []}
        from lockstep.core.query import Compare, Field

        node, datasets = search.run_filter(
            field_text(body, "filter", required=False, limit=100_000)
        )
        order = search.run_order([str(o) for o in field_list(body, "order_by")])
        conditions = [MlflowRecords.stage_condition(stages)]
        conditions += [MlflowRecords.dataset_condition(c.key, c.op, c.values) for c in datasets]
        in_experiments = Compare(
            field=Field(namespace="attributes", key="experiment"),
            op="in",
            values=tuple(names),
        )
        from lockstep.core.query import BoolOp

        where = in_experiments if node is None else BoolOp(op="and", items=(in_experiments, node))
        offset = page_start(body.get("page_token"))
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

    def log_metric(self, body: dict[str, Any]) -> dict[str, Any]:
        self._append(self._metric_run_id(body), [body])
        return {}

    def log_param(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        self._params(record, [{"key": body.get("key"), "value": body.get("value")}])
        return {}

    def set_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        tags = key_values([{"key": body.get("key"), "value": body.get("value", "")}], "tag")
        self._tags(record, tags)
        return {}

    def delete_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        key = checked_key(body.get("key"), "key")
        if key not in record.tags:
            raise missing(f"No tag with name: {key} in run with id {record.id}")
        self.meta.delete_tag(record.id, key)
        return {}

    def log_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        metrics, params = field_list(body, "metrics"), field_list(body, "params")
        tags = field_list(body, "tags")
        for items, most, what in (
            (metrics, MAX_BATCH_METRICS, "metrics"),
            (params, MAX_BATCH_PARAMS, "params"),
            (tags, MAX_BATCH_TAGS, "tags"),
        ):
            if len(items) > most:
                raise invalid(
                    f"A batch logging request can contain at most {most} {what}. "
                    f"Got {len(items)} {what}. Please split up {what} across multiple requests."
                )
        if len(metrics) + len(params) + len(tags) > MAX_BATCH_TOTAL:
            raise invalid(
                f"A batch logging request can contain at most {MAX_BATCH_TOTAL} metrics, params "
                "and tags in total."
            )
        if not params and not tags:
            self._append(self._metric_run_id(body), metrics)
            return {}
        record = self._active_run(body)
        if params:
            self._params(record, params)
        if tags:
            self._tags(record, key_values(tags, "tags"))
        if metrics:
            self._append(record.id, metrics)
        return {}

    def _params(self, record: RunRecord, items: list[Any]) -> None:
        """Params are immutable, as MLflow enforces: the same value again is fine."""
        given: dict[str, str] = {}
        for item in items:
            if not isinstance(item, dict):
                raise invalid("params must be a list of {key, value}")
            key = checked_key(item.get("key"), "param key")
            value = item.get("value")
            text = "" if value is None else str(value)
            if len(text) > MAX_PARAM_LENGTH or "\x00" in text:
                raise invalid(f"Param value for {key!r} is longer than {MAX_PARAM_LENGTH}")
            if key in given and given[key] != text:
                raise invalid(f"Duplicate parameter keys have been submitted: [{key!r}]")
            given[key] = text
        for key, text in given.items():
            if key in record.params and param_text(record.params[key]) != text:
                raise invalid(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{param_text(record.params[key])}' for run "
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
        if any(t in tags for t in SOURCE_TAGS):
            self._fill_sections(record.id, tags, record.sections)

    def _append(self, run_id: str, items: list[Any]) -> None:
        import numpy as np

        series: dict[str, tuple[list[int], list[float], list[float]]] = {}
        now = time.time()
        for item in items:
            if not isinstance(item, dict):
                raise invalid("metrics must be a list of {key, value, timestamp, step}")
            key = checked_key(item.get("key"), "metric key")
            value = field_float(item.get("value"), "value")
            stamp = field_int(item, "timestamp")
            step = field_int(item, "step", 0) or 0
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
            now if self.pid > 0 else None,  # a server's runs have no process to watch
            check=self._require_active(run_id),
        )

    def log_inputs(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        found = []
        for item in field_list(body, "datasets"):
            if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
                raise invalid("datasets must be a list of {dataset, tags}")
            dataset = item["dataset"]
            tags = key_values(item.get("tags"), "dataset tags")
            name = field_text(dataset, "name", limit=500)
            digest = field_text(dataset, "digest", limit=128)
            for field in ("source_type", "source", "schema", "profile"):
                field_text(dataset, field, required=False, limit=1 << 20)
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
        for item in field_list(body, "models"):
            if not isinstance(item, dict):
                raise invalid("models must be a list of {model_id, step}")
            models.append(
                {
                    "model_id": field_text(item, "model_id", limit=64),
                    "step": field_int(item, "step", 0),
                }
            )
        outputs = list(record.sections.get("mlflow_outputs") or [])
        outputs += [m for m in models if m not in outputs]
        self.meta.set_sections(record.id, {"mlflow_outputs": outputs})
        return {}

    def log_model(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._active_run(body)
        model_json = field_text(body, "model_json", limit=1 << 20)
        history = record.tags.get("mlflow.log-model.history", "[]")
        import json

        try:
            entries = json.loads(history)
            entries.append(json.loads(model_json))
        except ValueError:
            raise invalid("model_json is not valid JSON") from None
        self.meta.set_tags(record.id, {"mlflow.log-model.history": json.dumps(entries)})
        return {}

    # metric histories ----------------------------------------------------------------

    def _history(self, run_id: str, key: str) -> Any:
        from lockstep.tracking.history import MetricHistory

        return MetricHistory.from_chunks(key, self.meta.metric_chunks(run_id, key))

    def get_metric_history(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._run(body)
        key = checked_key(body.get("metric_key"), "metric_key", limit=500)
        series = self._history(record.id, key)
        start = page_start(body.get("page_token"))
        limit = field_int(body, "max_results") or len(series)
        if limit <= 0:
            raise invalid("max_results must be positive")
        end = min(len(series), start + limit)
        steps = series.steps[start:end].tolist()
        values = series.values[start:end].tolist()
        times = (series.times[start:end] * 1000).round().astype("int64").tolist()
        answer: dict[str, Any] = {
            "metrics": [
                {"key": key, "value": json_number(v), "timestamp": t, "step": s}
                for s, v, t in zip(steps, values, times, strict=True)
            ]
        }
        if end < len(series):
            answer["next_page_token"] = str(end)
        return answer

    def get_metric_history_bulk_interval(self, body: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        run_ids = field_list(body, "run_ids")
        if not run_ids or len(run_ids) > 100:
            raise invalid("run_ids must name 1 to 100 runs")
        key = checked_key(body.get("metric_key"), "metric_key", limit=500)
        limit = field_int(body, "max_results", 320) or 320
        if not 0 < limit <= 1000:
            raise invalid("max_results must be between 1 and 1000")
        low, high = field_int(body, "start_step"), field_int(body, "end_step")
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
                    "value": json_number(v),
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
        inner = field_text(body, "path", required=False, limit=1000).strip("/")
        files = artifacts.listing(self.records, root, inner)
        return {"root_uri": f"{self.artifact_scheme}:/{root}", "files": files}

    # logged models (MLflow 3) ----------------------------------------------------------

"""MLflow's plugins for ``lockstep:`` URIs: a tracking store, a model registry store and an
artifact repository that answer the stock MLflow client in-process, on the local store,
with no server.

The stores are MLflow's own REST stores with the transport replaced: each request goes to
``MlflowService.handle`` instead of over HTTP, so the plugin speaks exactly the API the
server does. Metric points take a faster path: buffered in memory and stored every
flush interval (and before anything reads them), so ``mlflow.log_metric`` never waits on
SQL. Inside ``lockstep run``, the script's first MLflow run is the run that command
records (one run, not two).

Registered through the entry points ``mlflow.tracking_store``, ``mlflow.model_registry_store``
and ``mlflow.artifact_repository`` (scheme ``lockstep``); imported only by MLflow.
"""

from __future__ import annotations

import atexit
import json
import os
import posixpath
import threading
import time
from pathlib import Path
from typing import Any

from mlflow.entities import FileInfo, Metric
from mlflow.exceptions import MlflowException, RestException
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import MlflowHostCreds

from lockstep.errors import LockstepError, MlflowApiError
from lockstep.mlflow.service import MlflowService, lockstep_error

SCHEME = "lockstep"
_lock = threading.Lock()
_service: MlflowService | None = None
_points: PointBuffer | None = None


class PointBuffer:
    """Metric points logged through the plugin, stored by a daemon thread every interval
    with their own chunk numbers taken in the transaction (safe beside any other writer
    of the same run)."""

    def __init__(self, service: MlflowService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, tuple[list[int], list[float], list[float]]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lockstep-mlflow", daemon=True)
        self._thread.start()

    def add(self, run_id: str, key: str, value: float, timestamp_ms: int, step: int) -> None:
        with self._lock:
            steps, values, times = self._pending.setdefault(run_id, {}).setdefault(
                key, ([], [], [])
            )
            steps.append(step)
            values.append(value)
            times.append(timestamp_ms / 1000.0)

    def flush(self, run_id: str | None = None) -> None:
        import numpy as np

        with self._lock:
            if run_id is None:
                taken, self._pending = self._pending, {}
            else:
                taken = {run_id: self._pending.pop(run_id)} if run_id in self._pending else {}
        for rid, series in taken.items():
            self.service.meta.append_series(
                rid,
                {
                    k: (np.array(s, dtype=np.int64), np.array(v, dtype=np.float64), np.array(t))
                    for k, (s, v, t) in series.items()
                },
                time.time(),
            )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # never raise into training; the points stay for atexit
                continue

    def close(self) -> None:
        self._stop.set()
        self.flush()


def service() -> MlflowService:
    """The process's service on the local store (opened once)."""
    global _service, _points
    with _lock:
        if _service is not None:
            return _service
        import getpass
        import socket

        from lockstep.settings import Settings
        from lockstep.tracking.api import open_workspace

        settings = Settings.from_env()
        workspace = open_workspace(settings)
        if not workspace.local_sql:
            raise MlflowException(
                "lockstep: tracking URIs work on a local store; with a lockstep server, set "
                "MLFLOW_TRACKING_URI to the server's URL (http://HOST:PORT)"
            )
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = None
        made = MlflowService(
            workspace,
            artifact_scheme=SCHEME,
            host=socket.gethostname(),
            pid=os.getpid(),
            user=user,
        )
        if settings.attach_run_id and os.environ.get("LOCKSTEP_CAPTURE_DIR"):
            made.claim = _claimer(settings.attach_run_id, Path(os.environ["LOCKSTEP_CAPTURE_DIR"]))
            made.launcher_run_id = settings.attach_run_id
        _points = PointBuffer(made, settings.flush_interval)
        atexit.register(_points.close)
        _service = made
        return made


def _claimer(run_id: str, capture_dir: Path) -> Any:
    """The `lockstep run` record for the first MLflow run of the whole process tree."""

    def claim() -> str | None:
        from lockstep.tracking.api import _wait_for_run

        try:
            fd = os.open(capture_dir / "mlflow.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except OSError:
            return None
        os.close(fd)
        assert _service is not None
        _wait_for_run(_service.workspace, run_id)
        return run_id

    return claim


def _call(method: str, path: str, json_body: Any, response_proto: Any) -> Any:
    body = json.loads(json_body) if isinstance(json_body, str) and json_body else {}
    if not isinstance(body, dict):
        body = {}
    handler = service()
    prefix = "/api/2.0/mlflow/"
    relative = path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")
    try:
        answer = handler.handle(method, relative, body)
    except LockstepError as exc:
        error = exc if isinstance(exc, MlflowApiError) else lockstep_error(exc)
        raise _rest_error(error.error_code, str(error)) from None
    parse_dict(answer, response_proto)  # type: ignore[no-untyped-call]
    return response_proto


def _rest_error(code: str, message: str) -> RestException:
    """The exception MLflow's client raises for an error answer (and branches on)."""
    return RestException({"error_code": code, "message": message})  # type: ignore[no-untyped-call]


def _host() -> MlflowHostCreds:
    return MlflowHostCreds(f"{SCHEME}:")  # type: ignore[no-untyped-call]


class LockstepTrackingStore(RestStore):
    """MLflow's tracking store over the local lockstep store."""

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__(_host)  # type: ignore[no-untyped-call]
        self.store_uri = store_uri

    def _call_endpoint(
        self,
        api: Any,
        json_body: Any = None,
        endpoint: str | None = None,
        retry_timeout_seconds: Any = None,
        response_proto: Any = None,
    ) -> Any:
        v3 = getattr(self, "_V3_APIS", ())
        info = self._V3_METHOD_TO_INFO if api in v3 else self._METHOD_TO_INFO
        path, method = info[api]
        _points_flush()  # whatever this request reads or ends sees every point logged so far
        return _call(method, endpoint or path, json_body, response_proto or api.Response())

    def log_metric(self, run_id: str, metric: Metric) -> None:
        """Buffered: a microsecond-scale append; stored within the flush interval."""
        _checked_run(run_id)
        _log_point(run_id, metric)

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        if params or tags or len(metrics) > 1000:
            _points_flush(run_id)
            super().log_batch(run_id, metrics, params, tags)  # type: ignore[no-untyped-call]
            return
        _checked_run(run_id)
        for metric in metrics:
            _log_point(run_id, metric)


def _points_flush(run_id: str | None = None) -> None:
    if _points is not None:
        _points.flush(run_id)


# Runs this process has seen active: a metric for them needs no question to the store.
_active: set[str] = set()


def _checked_run(run_id: str) -> None:
    if run_id in _active:
        return
    handler = service()
    stage = handler.records.run_stages([run_id]).get(run_id, "active")
    if not handler.meta.has_run(run_id):
        raise _rest_error("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found")
    if stage != "active":
        raise _rest_error(
            "INVALID_STATE",
            f"The run {run_id} must be in the 'active' state. Current state is {stage}.",
        )
    _active.add(run_id)


def _log_point(run_id: str, metric: Metric) -> None:
    from lockstep.mlflow.values import checked_key, field_float

    try:
        key = checked_key(metric.key, "metric key")
        value = field_float(metric.value, "value")
    except MlflowApiError as exc:
        raise _rest_error(exc.error_code, str(exc)) from None
    assert _points is not None
    timestamp = metric.timestamp if metric.timestamp is not None else int(time.time() * 1000)
    _points.add(run_id, key, value, int(timestamp), int(metric.step or 0))


class LockstepRegistryStore(RegistryRestStore):
    """MLflow's model registry over lockstep's models, aliases and their history."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(_host)  # type: ignore[no-untyped-call]

    def _call_endpoint(
        self,
        api: Any,
        json_body: Any,
        call_all_endpoints: bool = False,
        extra_headers: Any = None,
    ) -> Any:
        if call_all_endpoints:
            path, method = self._get_all_endpoints_from_method(api)[0]  # type: ignore[no-untyped-call]
        else:
            path, method = self._get_endpoint_from_method(api)  # type: ignore[no-untyped-call]
        _points_flush()
        return _call(method, path, json_body, self._get_response_from_method(api))  # type: ignore[no-untyped-call]


def _root(artifact_uri: str) -> str:
    from lockstep.mlflow import artifacts

    if not artifact_uri.startswith(f"{SCHEME}:"):
        raise MlflowException(f"{artifact_uri!r} is not a lockstep: artifact location")
    return artifacts.clean(artifact_uri[len(SCHEME) + 1 :].lstrip("/"))


class LockstepArtifactRepository(ArtifactRepository):
    """Artifacts by content in the local store, at ``lockstep:/runs/ID/artifacts`` and
    ``lockstep:/models/ID/artifacts``."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self.root = _root(artifact_uri)

    def _path(self, *parts: str | None) -> str:
        from lockstep.mlflow import artifacts

        joined = posixpath.join(self.root, *[p for p in parts if p])
        return artifacts.clean(joined)

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        from lockstep.mlflow import artifacts
        from lockstep.objects import guard

        handler = service()
        objects = handler.workspace.objects
        with guard.writing(objects.root):
            stored = objects.put_file(local_file)
            artifacts.record(
                handler.workspace,
                handler.records,
                self._path(artifact_path, os.path.basename(local_file)),
                stored.digest,
                stored.size,
            )

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        base = Path(local_dir)
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            inner = path.parent.relative_to(base).as_posix()
            where = posixpath.join(artifact_path or "", "" if inner == "." else inner)
            self.log_artifact(str(path), where or None)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        from lockstep.mlflow import artifacts

        listed = artifacts.listing(service().records, self.root, path or "")
        return [FileInfo(f["path"], f["is_dir"], f.get("file_size")) for f in listed]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        from lockstep.mlflow import artifacts

        handler = service()
        digest, _ = artifacts.read(
            handler.workspace.objects, handler.records, self._path(remote_file_path)
        )
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        with open(local_path, "wb") as out:
            for piece in artifacts.chunks(handler.workspace.objects, digest):
                out.write(piece)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        service().records.delete_files(self._path(artifact_path))

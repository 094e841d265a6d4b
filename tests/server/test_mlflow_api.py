"""The stock MLflow client against a real `lockstep server` (SQLite and PostgreSQL behind
it): the everyday flow, autologging, the registry, MLflow's errors, hostile artifact paths."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from blake3 import blake3

from tests.conftest import clean_env
from tests.serverproc import served

pytest.importorskip("mlflow")

MLFLOW = "/api/2.0/mlflow"

EVERYDAY = """
import json, mlflow, os
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

mlflow.set_experiment("iris")
out = {}
with mlflow.start_run(run_name="first") as run:
    mlflow.log_param("lr", 0.1)
    mlflow.log_params({"depth": 3, "opt": "sgd"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=5)
    MlflowClient().log_batch(
        run.info.run_id,
        metrics=[Metric("batch", float(i), 1700000000000 + i, i) for i in range(1000)],
        params=[Param("batch_param", "yes")],
        tags=[RunTag("source", "batch")],
    )
    mlflow.set_tag("team", "vision")
    mlflow.log_dict({"a": 1}, "config.json")
    with open("notes.txt", "w") as f:
        f.write("hello lockstep")
    mlflow.log_artifact("notes.txt", artifact_path="docs")
    import pandas as pd
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    mlflow.log_input(mlflow.data.from_pandas(frame, name="toy"), context="training")
with mlflow.start_run(run_name="second"):
    mlflow.log_param("opt", "adam")
    mlflow.log_metric("acc", 0.5)
client = MlflowClient()
rid = run.info.run_id
got = client.get_run(rid)
out["run_id"] = rid
out["params"] = got.data.params
out["metrics"] = got.data.metrics
out["tags"] = {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")}
out["status"] = got.info.status
out["history"] = [(m.step, m.value) for m in client.get_metric_history(rid, "loss")]
out["batch_points"] = len(client.get_metric_history(rid, "batch"))
out["artifacts"] = sorted(f.path for f in client.list_artifacts(rid))
out["docs"] = [f.path for f in client.list_artifacts(rid, "docs")]
path = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="docs/notes.txt")
out["downloaded"] = open(path).read()
found = mlflow.search_runs(
    filter_string="metrics.acc > 0.1 and params.opt IN ('sgd', 'adam')",
    order_by=["metrics.acc DESC"],
    output_format="list",
)
out["search"] = [r.info.run_name for r in found]
out["search_like"] = [
    r.info.run_name
    for r in mlflow.search_runs(filter_string="tags.team ILIKE 'VIS%'", output_format="list")
]
out["search_dataset"] = [
    r.info.run_name
    for r in mlflow.search_runs(filter_string="datasets.name = 'toy'", output_format="list")
]
out["inputs"] = [d.dataset.name for d in got.inputs.dataset_inputs]
page = client.search_runs([got.info.experiment_id], max_results=1)
out["paged"] = [len(page), bool(page.token)]
out["experiment"] = client.get_experiment_by_name("iris").experiment_id
print(json.dumps(out))
"""


def mlflow_client(cwd: Path, url: str, code: str, **extra: str) -> dict:  # type: ignore[type-arg]
    """Run code with the stock MLflow client pointed at url; its last line is JSON."""
    env = clean_env(MLFLOW_TRACKING_URI=url, **extra)
    env.pop("MLFLOW_TRACKING_TOKEN", None) if "MLFLOW_TRACKING_TOKEN" not in extra else None
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture
def mlflow_server(server: str, tmp_path: Path) -> tuple[str, Path]:
    """The server fixture's URL and the directory it serves from."""
    return server, tmp_path / "served"


def test_the_everyday_flow(mlflow_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mlflow_server
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    out = mlflow_client(client_dir, url, EVERYDAY)
    assert out["params"] == {
        "lr": "0.1",
        "depth": "3",
        "opt": "sgd",
        "batch_param": "yes",
    }
    assert out["metrics"]["acc"] == 0.9 and out["metrics"]["loss"] == 0.2
    assert out["tags"] == {"team": "vision", "source": "batch"}
    assert out["status"] == "FINISHED"
    assert out["history"] == [[i, 1.0 / (i + 1)] for i in range(5)]
    assert out["batch_points"] == 1000
    assert out["artifacts"] == ["config.json", "docs"]
    assert out["docs"] == ["docs/notes.txt"]
    assert out["downloaded"] == "hello lockstep"
    assert out["search"] == ["first", "second"]
    assert out["search_like"] == ["first"]
    assert out["search_dataset"] == ["first"]
    assert out["inputs"] == ["toy"]
    assert out["paged"] == [1, True]
    assert out["experiment"] != "0"

    # The same run, as lockstep sees it: MLflow's artifacts are stored by content.
    run = httpx.get(f"{url}/api/v1/projects/default/runs/{out['run_id']}").json()
    assert run["experiment"] == "iris"
    artifacts = {a["path"]: a for a in run["artifacts"]}
    notes = artifacts["mlflow/docs/notes.txt"]
    assert notes["digest"] == blake3(b"hello lockstep").hexdigest()
    assert notes["size"] == len("hello lockstep")
    assert run["sections"]["code"]["reported_by"] == "mlflow"
    assert "kind" not in run["sections"]["code"]  # never a snapshot a rerun could use


def test_autolog_register_alias_and_load(mlflow_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mlflow_server
    out = mlflow_client(
        tmp_path,
        url,
        """
        import json, mlflow, mlflow.sklearn
        from mlflow import MlflowClient
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        X, y = load_iris(return_X_y=True)
        mlflow.sklearn.autolog(log_models=False)
        with mlflow.start_run() as run:
            model = LogisticRegression(max_iter=300).fit(X, y)
            mlflow.sklearn.log_model(model, name="model", registered_model_name="iris-clf")
        client = MlflowClient()
        client.set_registered_model_alias("iris-clf", "champion", "1")
        loaded = mlflow.pyfunc.load_model("models:/iris-clf@champion")
        version = client.get_model_version_by_alias("iris-clf", "champion")
        print(json.dumps({
            "params": sorted(client.get_run(run.info.run_id).data.params),
            "metrics": sorted(client.get_run(run.info.run_id).data.metrics),
            "predicted": loaded.predict(X[:3]).tolist(),
            "expected": model.predict(X[:3]).tolist(),
            "version": version.version,
            "version_run": version.run_id,
            "run": run.info.run_id,
            "models": [m.name for m in client.search_registered_models()],
        }))
        """,
    )
    assert "C" in out["params"] and "max_iter" in out["params"]
    assert "training_accuracy_score" in out["metrics"]
    assert out["predicted"] == out["expected"]
    assert out["version"] == "1"
    assert out["version_run"] == out["run"]
    assert out["models"] == ["iris-clf"]
    # lockstep's registry holds the version, its files by content, and the alias move.
    versions = httpx.get(f"{url}/api/v1/projects/default/models/iris-clf/versions").json()
    assert versions["aliases"] == {"champion": 1}
    (version,) = versions["versions"]
    assert version["run"] == out["run"]
    assert version["files"] >= 3  # MLmodel, model.pkl, the environment files


def error(url: str, method: str, path: str, **kwargs: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    answer = httpx.request(method, url + path, **kwargs)  # type: ignore[arg-type]
    return answer.status_code, answer.json()


def test_errors_keep_mlflow_codes(mlflow_server: tuple[str, Path]) -> None:
    url, _ = mlflow_server
    status, body = error(url, "GET", f"{MLFLOW}/runs/get", params={"run_id": "0" * 26})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = error(
        url, "GET", f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "nope"}
    )
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    run = httpx.post(f"{url}{MLFLOW}/runs/create", json={"experiment_id": "0"}).json()["run"]
    rid = run["info"]["run_id"]
    assert (
        httpx.post(
            f"{url}{MLFLOW}/runs/log-parameter", json={"run_id": rid, "key": "lr", "value": "0.1"}
        ).status_code
        == 200
    )
    status, body = error(
        url,
        "POST",
        f"{MLFLOW}/runs/log-parameter",
        json={"run_id": rid, "key": "lr", "value": "0.2"},
    )
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "Changing param values is not allowed" in body["message"]
    metrics = [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(1001)]
    status, body = error(
        url, "POST", f"{MLFLOW}/runs/log-batch", json={"run_id": rid, "metrics": metrics}
    )
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    status, body = error(
        url,
        "POST",
        f"{MLFLOW}/runs/search",
        json={"experiment_ids": ["0"], "filter": "metrics.a > 1 or metrics.b < 2"},
    )
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    status, body = error(url, "POST", f"{MLFLOW}/experiments/create", json={"name": "Default"})
    assert (status, body["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    status, body = error(url, "POST", f"{MLFLOW}/runs/nothing-here", json={})
    assert (status, body["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    # A deleted run is hidden from searches, shown with ALL, and refuses writes.
    assert httpx.post(f"{url}{MLFLOW}/runs/delete", json={"run_id": rid}).status_code == 200
    found = httpx.post(f"{url}{MLFLOW}/runs/search", json={"experiment_ids": ["0"]}).json()
    assert rid not in [r["info"]["run_id"] for r in found.get("runs", [])]
    found = httpx.post(
        f"{url}{MLFLOW}/runs/search", json={"experiment_ids": ["0"], "run_view_type": "ALL"}
    ).json()
    assert rid in [r["info"]["run_id"] for r in found["runs"]]
    status, body = error(
        url,
        "POST",
        f"{MLFLOW}/runs/log-metric",
        json={"run_id": rid, "key": "m", "value": 1, "timestamp": 0},
    )
    assert (status, body["error_code"]) == (400, "INVALID_STATE")


@pytest.mark.parametrize(
    "path",
    [
        "../../outside.txt",
        "runs/%2E%2E/%2E%2E/outside.txt",
        "/etc/passwd-copy",
        "runs/a/../../outside.txt",
    ],
)
def test_hostile_artifact_paths_write_nothing(
    mlflow_server: tuple[str, Path], tmp_path: Path, path: str
) -> None:
    url, home = mlflow_server
    import http.client

    # Sent as written: an HTTP library would fold the dots away before they left.
    connection = http.client.HTTPConnection(url.removeprefix("http://"))
    connection.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{path}", body=b"owned")
    answer = connection.getresponse()
    status, text = answer.status, answer.read()
    connection.close()
    assert status in (400, 404), text
    assert not (tmp_path / "outside.txt").exists()
    assert not (home / "outside.txt").exists()
    assert not Path("/etc/passwd-copy").exists()
    listing = httpx.get(f"{url}/api/2.0/mlflow-artifacts/artifacts").json()
    assert listing.get("files", []) == []


def test_auth_tokens_and_roles(tmp_path: Path) -> None:
    home = tmp_path / "served"
    home.mkdir()
    from tests.tracking.test_launcher import lockstep

    def token(role: str) -> str:
        made = lockstep(home, "server", "token", "create", "--user", f"ann-{role}", "--role", role)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    writer, reader = token("write"), token("read")
    with served(home, "--auth") as url:
        status, body = error(url, "POST", f"{MLFLOW}/experiments/create", json={"name": "x"})
        assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")
        status, body = error(
            url,
            "POST",
            f"{MLFLOW}/experiments/create",
            json={"name": "x"},
            headers={"authorization": f"Bearer {reader}"},
        )
        assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
        out = mlflow_client(
            tmp_path,
            url,
            """
            import json, mlflow
            with mlflow.start_run() as run:
                mlflow.log_metric("acc", 0.7)
            print(json.dumps({"user": mlflow.MlflowClient().get_run(run.info.run_id).info.user_id}))
            """,
            MLFLOW_TRACKING_TOKEN=writer,
        )
        assert out["user"]
        status, body = error(
            url,
            "POST",
            f"{MLFLOW}/runs/search",
            json={"experiment_ids": ["0"]},
            headers={"authorization": f"Bearer {reader}"},
        )
        assert status == 200 and len(body["runs"]) == 1


def test_multipart_upload_through_the_proxy(
    mlflow_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = mlflow_server
    out = mlflow_client(
        tmp_path,
        url,
        """
        import json, os, mlflow
        from mlflow import MlflowClient
        data = os.urandom(5 * 1024 * 1024 + 123)
        with open("big.bin", "wb") as f:
            f.write(data)
        with mlflow.start_run() as run:
            mlflow.log_artifact("big.bin", artifact_path="weights")
        path = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="weights/big.bin"
        )
        print(json.dumps({"same": open(path, "rb").read() == data, "run": run.info.run_id}))
        """,
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="true",
        MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE="1",
        MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE=str(1024 * 1024),
    )
    assert out["same"]
    run = httpx.get(f"{url}/api/v1/projects/default/runs/{out['run']}").json()
    assert {a["path"] for a in run["artifacts"]} == {"mlflow/weights/big.bin"}
    # The parts are gone once joined; an upload id that was never handed out is no door.
    answer = httpx.put(
        f"{url}/api/2.0/mlflow-artifacts/mpu/part/default/{'A' * 32}/1", content=b"x"
    )
    assert answer.status_code == 404
    answer = httpx.put(
        f"{url}/api/2.0/mlflow-artifacts/mpu/part/default/..%2F..%2Fx/1", content=b"x"
    )
    assert answer.status_code in (400, 404, 405)  # refused, whichever route it reached


def test_searches_of_experiments_models_and_versions(mlflow_server: tuple[str, Path]) -> None:
    url, _ = mlflow_server

    def call(method: str, path: str, **kwargs: object) -> dict:  # type: ignore[type-arg]
        answer = httpx.request(method, f"{url}{MLFLOW}/{path}", **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    for name in ("vision-a", "vision-b", "nlp"):
        tags = [{"key": "team", "value": name.split("-")[0]}]
        call("POST", "experiments/create", json={"name": name, "tags": tags})
    found = call(
        "POST",
        "experiments/search",
        json={"filter": "tags.team = 'vision'", "order_by": ["name DESC"], "max_results": 1},
    )
    assert [e["name"] for e in found["experiments"]] == ["vision-b"]
    more = call(
        "POST",
        "experiments/search",
        json={
            "filter": "tags.team = 'vision'",
            "order_by": ["name DESC"],
            "max_results": 1,
            "page_token": found["next_page_token"],
        },
    )
    assert [e["name"] for e in more["experiments"]] == ["vision-a"]
    assert "next_page_token" not in more
    assert [
        e["name"]
        for e in call("POST", "experiments/search", json={"filter": "name LIKE 'nl%'"})[
            "experiments"
        ]
    ] == ["nlp"]

    run = call("POST", "runs/create", json={"experiment_id": "0"})["run"]["info"]["run_id"]
    for model in ("alpha", "beta"):
        call("POST", "registered-models/create", json={"name": model})
        for n in range(2):
            call(
                "POST",
                "model-versions/create",
                json={"name": model, "source": f"s3://bucket/{model}/{n}", "run_id": run},
            )
    models = call("GET", "registered-models/search", params={"filter": "name ILIKE 'AL%'"})
    assert [m["name"] for m in models["registered_models"]] == ["alpha"]
    versions = call("GET", "model-versions/search", params={"filter": "name = 'beta'"})
    assert [v["version"] for v in versions["model_versions"]] == ["2", "1"]
    assert {v["source"] for v in versions["model_versions"]} == {
        "s3://bucket/beta/0",
        "s3://bucket/beta/1",
    }
    uri = call("GET", "model-versions/get-download-uri", params={"name": "beta", "version": "1"})
    assert uri["artifact_uri"] == "s3://bucket/beta/0"  # an address outside lockstep, kept as given

"""MLflow's stock client with no server: the lockstep: plugins, and an unmodified MLflow
script under `lockstep run`, whose MLflow run is the run lockstep captured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep, show

pytest.importorskip("mlflow")

TRAIN = """\
import random, sys
import mlflow

mlflow.set_experiment("demo")
with mlflow.start_run():
    mlflow.log_params({"lr": 0.1, "epochs": 3})
    for step in range(50):
        mlflow.log_metric("loss", random.random(), step=step)
    mlflow.log_metrics({"acc": random.random()}, step=50)
    mlflow.log_dict({"seed_draw": random.random()}, "result.json")
print("trained")
"""


def ok(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = lockstep(project, *args, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {"train.py": TRAIN})


def test_an_mlflow_script_under_lockstep_run_is_one_run(project: Path) -> None:
    ok(project, "run", "--seed", "7", "--", sys.executable, "train.py")
    runs = json.loads(ok(project, "runs", "--json"))
    assert len(runs) == 1  # MLflow's run is the run lockstep captured, not a second one
    record = show(project)
    assert record["experiment"] == "demo"
    assert record["params"] == {"lr": "0.1", "epochs": "3"}
    assert record["metric_summaries"]["loss"]["count"] == 50
    assert "acc" in record["metrics"]
    assert record["command"]["argv"][-1] == "train.py"  # lockstep's own capture
    assert record["code"]["kind"] == "git"
    assert record["seed"]["value"] == 7
    assert "mlflow/result.json" in {a["path"] for a in record["artifacts"]}
    assert record["status"] == "finished"  # MLflow's end_run does not end it: the exit does


def test_verify_compares_what_mlflow_logged(project: Path) -> None:
    ok(project, "run", "--seed", "7", "--name", "seven", "--", sys.executable, "train.py")
    same = lockstep(project, "verify", "seven", timeout=300)
    assert same.returncode == 0, same.stdout + same.stderr
    # The experiment MLflow created in the first run exists in the rerun: nothing MLflow
    # prints about it differs.
    assert "IDENTICAL" in same.stdout, same.stdout
    assert "loss" in same.stdout  # judged on MLflow's curve, point by point
    ok(project, "run", "--seed", "8", "--name", "eight", "--", sys.executable, "train.py")
    other = lockstep(project, "verify", "seven", "--against", "eight", timeout=300)
    assert other.returncode == 1
    assert "NOT_REPRODUCED" in other.stdout, other.stdout + other.stderr
    assert "loss" in other.stdout


def test_a_tracking_uri_the_user_set_wins(project: Path, tmp_path: Path) -> None:
    elsewhere = (tmp_path / "mlruns").as_uri()
    ok(
        project,
        "run",
        "--",
        sys.executable,
        "train.py",
        env={"MLFLOW_TRACKING_URI": elsewhere, "MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    record = show(project)
    assert record["params"] == {}  # MLflow wrote where the user pointed it
    assert (tmp_path / "mlruns").is_dir()


def test_the_plugin_without_lockstep_run(tmp_path: Path) -> None:
    from tests.conftest import clean_env, run_python

    project = make_repo(tmp_path / "plain", {"README": "x"})
    result = run_python(
        """
        import json, mlflow
        from mlflow import MlflowClient
        mlflow.set_experiment("plain")
        with mlflow.start_run() as run:
            mlflow.log_param("k", "v")
            for i in range(10):
                mlflow.log_metric("m", i * 0.5, step=i)
            history = MlflowClient().get_metric_history(run.info.run_id, "m")
            mlflow.log_text("hi", "notes/hello.txt")
        client = MlflowClient()
        client.create_registered_model("plain-model")
        source = f"runs:/{run.info.run_id}/notes"
        mv = client.create_model_version("plain-model", source, run.info.run_id)
        client.set_registered_model_alias("plain-model", "prod", mv.version)
        path = mlflow.artifacts.download_artifacts(f"models:/plain-model@prod")
        import os
        print(json.dumps({
            "history": [m.value for m in history],
            "files": sorted(os.listdir(path)),
            "version": mv.version,
            "run": run.info.run_id,
        }))
        """,
        env=clean_env(MLFLOW_TRACKING_URI="lockstep:"),
        cwd=project,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["history"] == [i * 0.5 for i in range(10)]  # read back before any flush interval
    assert out["files"] == ["hello.txt"]
    record = show(project)
    assert record["id"] == out["run"]
    assert record["experiment"] == "plain"
    assert record["status"] == "finished"
    versions = json.loads(ok(project, "models", "ls", "--json"))
    assert any(v["model"] == "plain-model" and v["run"] == out["run"] for v in versions)


def test_removing_a_run_lets_gc_take_its_mlflow_artifacts(tmp_path: Path) -> None:
    from tests.conftest import clean_env, run_python

    project = make_repo(tmp_path / "gc", {"README": "x"})
    made = run_python(
        """
        import mlflow
        with mlflow.start_run() as run:
            mlflow.log_text("only this run's bytes", "notes/only.txt")
        print(run.info.run_id)
        """,
        env=clean_env(MLFLOW_TRACKING_URI="lockstep:"),
        cwd=project,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    run_id = made.stdout.strip().splitlines()[-1]
    (artifact,) = show(project, run_id)["artifacts"]
    objects = project / ".lockstep" / "objects" / "blake3"
    stored = objects / artifact["digest"][:2] / artifact["digest"][2:]
    assert stored.is_file()
    ok(project, "gc")
    assert stored.is_file()  # referenced by the run's MLflow files
    ok(project, "rm", run_id)
    ok(project, "gc")
    assert not stored.exists()


def test_an_mlflow_older_than_3_keeps_its_own_default(tmp_path: Path) -> None:
    older = {"mlflow/__init__.py": "", "mlflow/version.py": 'VERSION = "2.9.2"\n'}
    project = make_repo(
        tmp_path / "old", {"README": "x", **{f"shim/{k}": v for k, v in older.items()}}
    )
    show_uri = "import os; print('uri', os.environ.get('MLFLOW_TRACKING_URI'))"
    current = lockstep(project, "run", "--", sys.executable, "-c", show_uri, timeout=300)
    assert "uri lockstep:" in current.stdout, current.stdout + current.stderr
    shimmed = lockstep(
        project,
        "run",
        "--",
        sys.executable,
        "-c",
        show_uri,
        env={"PYTHONPATH": str(project / "shim")},
        timeout=300,
    )
    assert "uri None" in shimmed.stdout, shimmed.stdout + shimmed.stderr

"""MLflow's side of the tracking benchmark (sqlite backend); run with the peers' interpreter."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _client(home: str) -> object:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{Path(home) / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def log_per_call(home: str, calls: int = 300) -> dict[str, float]:
    import mlflow

    _client(home)
    with mlflow.start_run():
        start = time.perf_counter()
        for step in range(calls):
            mlflow.log_metric("metric_0", step * 0.001, step=step)
        elapsed = time.perf_counter() - start
    return {"points": calls, "points_per_s": calls / elapsed}


def log_metrics(home: str, *, asynchronous: bool, steps: int, keys: int = 10) -> dict[str, float]:
    """Like lockstep's case: one call per step with `keys` keys (`mlflow.log_metrics`), in a
    fresh process from `import mlflow` to the run ended and one series read back."""
    start = time.perf_counter()
    import mlflow

    client = _client(home)
    names = [f"metric_{k}" for k in range(keys)]
    with mlflow.start_run() as run:
        for step in range(steps):
            mlflow.log_metrics(
                dict.fromkeys(names, step * 0.001), step=step, synchronous=not asynchronous
            )
    history = client.get_metric_history(run.info.run_id, "metric_0")  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - start
    assert len(history) == steps, len(history)
    return {"points": steps * keys, "steps": steps, "points_per_s": steps * keys / elapsed}


def log_batch(home: str, keys: int = 10, steps: int = 2_000) -> dict[str, float]:
    import mlflow
    from mlflow.entities import Metric

    client = _client(home)
    with mlflow.start_run() as run:
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"metric_{k}", s * 0.001, now, s) for s in range(steps) for k in range(keys)
        ]
        start = time.perf_counter()
        for offset in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run.info.run_id, metrics=metrics[offset : offset + 1000])
        elapsed = time.perf_counter() - start
    return {"points": len(metrics), "points_per_s": len(metrics) / elapsed}


def search(home: str, runs: int = 1_000, repeat: int = 5) -> dict[str, float]:
    import random

    from mlflow.entities import Metric, Param

    client = _client(home)
    experiment = client.create_experiment("bench")
    rng = random.Random(0)
    now = int(time.time() * 1000)
    for _ in range(runs):
        run = client.create_run(experiment)
        params = [Param("p0", str(rng.choice([0.001, 0.01, 0.1, 1.0])))] + [
            Param(f"p{p}", str(rng.randint(1, 100))) for p in range(1, 10)
        ]
        metrics = [Metric(f"m{m}", rng.random(), now, 99) for m in range(10)]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
    timings = []
    found = []
    for _ in range(repeat):
        start = time.perf_counter()
        # MLflow compares params as strings: the nearest equivalent filter.
        found = client.search_runs(
            [experiment],
            filter_string="params.p0 != '0.001' and metrics.m1 >= 0.5",
            order_by=["metrics.m0 DESC"],
            max_results=runs,
        )
        timings.append(time.perf_counter() - start)
    return {"runs": runs, "matched": len(found), "ms": statistics.median(timings) * 1000}


def history(home: str, points: int = 20_000, repeat: int = 5) -> dict[str, float]:
    import mlflow
    from mlflow.entities import Metric

    client = _client(home)
    with mlflow.start_run() as run:
        now = int(time.time() * 1000)
        metrics = [Metric("loss", s * 1e-6, now, s) for s in range(points)]
        for offset in range(0, points, 1000):
            client.log_batch(run.info.run_id, metrics=metrics[offset : offset + 1000])
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        series = client.get_metric_history(run.info.run_id, "loss")
        timings.append(time.perf_counter() - start)
    assert len(series) == points
    return {"points": points, "ms": statistics.median(timings) * 1000}


CASES = {
    "log_metrics_sync": lambda home: log_metrics(home, asynchronous=False, steps=1_000),
    "log_metrics_async": lambda home: log_metrics(home, asynchronous=True, steps=5_000),
    "log_per_call": log_per_call,
    "log_batch": log_batch,
    "search_1k": search,
    "history": history,
}

if __name__ == "__main__":
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    with tempfile.TemporaryDirectory() as home:
        os.chdir(home)
        print(json.dumps(CASES[sys.argv[1]](home)))

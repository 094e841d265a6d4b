"""Lockstep's side of the tracking benchmark; each case prints one JSON line of figures."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def log_throughput(keys: int = 10, steps: int = 100_000) -> dict[str, float]:
    """Per-call run.log of `keys` keys x `steps` steps, persisted, then read back."""
    import numpy  # noqa: F401  # a training script has NumPy loaded already

    import lockstep

    names = [f"metric_{i}" for i in range(keys)]
    with lockstep.start(experiment="warm-up") as warm:  # open the store, as MLflow's side does
        warm.log({"x": 0.0})
    start = time.perf_counter()
    with lockstep.start(experiment="bench") as run:
        for step in range(steps):
            run.log(dict.fromkeys(names, step * 0.001), step=step)
        logged = time.perf_counter()
    persisted = time.perf_counter()
    stored = lockstep.get_run(run.id)
    points = sum(len(stored.metric_history(name)) for name in names)
    done = time.perf_counter()
    assert points == keys * steps, points
    return {
        "points": points,
        "log_call_us": (logged - start) / steps * 1e6,
        "seconds_total": done - start,
        "points_per_s": points / (done - start),
        "persist_s": persisted - logged,
        "read_back_s": done - persisted,
    }


def log_end_to_end(keys: int = 10, steps: int = 100_000) -> dict[str, float]:
    """The same logging in a fresh process, timed from `import lockstep` (SQLAlchemy, the
    store's first open) to the run finished and one series read back, as MLflow's side."""
    start = time.perf_counter()
    import lockstep

    names = [f"metric_{i}" for i in range(keys)]
    with lockstep.start(experiment="bench") as run:
        for step in range(steps):
            run.log(dict.fromkeys(names, step * 0.001), step=step)
    series = lockstep.get_run(run.id).metric_history("metric_0")
    elapsed = time.perf_counter() - start
    assert len(series) == steps, len(series)
    return {"points": keys * steps, "points_per_s": keys * steps / elapsed, "seconds": elapsed}


def _populate(runs: int, params: int = 10, metrics: int = 10) -> None:
    """Insert runs in bulk straight into the store (setup only, not what is measured)."""
    import random

    from lockstep.core import params as codec
    from lockstep.core.ids import new_run_id
    from lockstep.core.records import MetricSummary
    from lockstep.meta import schema
    from lockstep.meta.engine import write_transaction
    from lockstep.meta.store import summary_json
    from lockstep.tracking.api import open_workspace

    rng = random.Random(0)
    meta = open_workspace().meta
    now = time.time()
    batch = 5000
    for offset in range(0, runs, batch):
        run_rows, param_rows, summary_rows = [], [], []
        for i in range(offset, min(runs, offset + batch)):
            run_id = new_run_id(int((now - runs + i) * 1000))
            run_rows.append(
                {
                    "id": run_id,
                    "name": f"run-{i}",
                    "status": "finished",
                    "start_time": now - runs + i,
                    "end_time": now,
                    "host": "bench",
                    "pid": 1,
                    "pid_start": None,
                    "heartbeat_at": now,
                    "note": "",
                }
            )
            for p in range(params):
                value = rng.choice([0.001, 0.01, 0.1, 1.0]) if p == 0 else rng.randint(1, 100)
                encoded = codec.encode(f"p{p}", value)
                param_rows.append(
                    {
                        "run_id": run_id,
                        "key": encoded.key,
                        "value_json": encoded.value_json,
                        "value_type": encoded.value_type,
                        "value_num": encoded.value_num,
                        "value_text": encoded.value_json,
                    }
                )
            for m in range(metrics):
                value = rng.random()
                summary = MetricSummary(f"m{m}", value, 99, value, value, 100)
                summary_rows.append(
                    {
                        "run_id": run_id,
                        "key": summary.key,
                        "last": value,
                        "last_step": 99,
                        "min": value,
                        "max": value,
                        "count": 100,
                        "summary_json": summary_json(summary),
                    }
                )
        with write_transaction(meta.engine) as connection:
            experiment_id = meta.experiment_id(connection, "bench", now)
            for row in run_rows:
                row["experiment_id"] = experiment_id
            connection.execute(schema.runs.insert(), run_rows)
            connection.execute(schema.params.insert(), param_rows)
            connection.execute(schema.metric_summaries.insert(), summary_rows)


def search(runs: int, limit: int | None, repeat: int = 7) -> dict[str, float]:
    """lockstep.runs with a filter and a sort over `runs` runs; median of repeats."""
    import statistics

    import lockstep

    _populate(runs)
    query = {
        "filter": "params.p0 > 0.005 and metrics.m1 >= 0.5",
        "sort": "-metrics.m0",
        "limit": limit,
    }
    found = lockstep.runs(**query)  # warm caches
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        found = lockstep.runs(**query)
        timings.append(time.perf_counter() - start)
    return {"runs": runs, "matched": len(found), "ms": statistics.median(timings) * 1000}


def history(points: int = 1_000_000, repeat: int = 7) -> dict[str, float]:
    """metric_history of one series of `points` points; median of repeats."""
    import statistics

    import lockstep

    with lockstep.start(experiment="bench") as run:
        for step in range(points):
            run.log({"loss": step * 1e-6}, step=step)
    stored = lockstep.get_run(run.id)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        series = stored.metric_history("loss")
        timings.append(time.perf_counter() - start)
    assert len(series) == points
    return {"points": points, "ms": statistics.median(timings) * 1000}


CASES = {
    "log": log_throughput,
    "log_end_to_end": log_end_to_end,
    "search_1k": lambda: search(1_000, None),
    "search_1k_page": lambda: search(1_000, 100),
    "search_100k": lambda: search(100_000, 100),
    "history_1m": history,
}

if __name__ == "__main__":
    case = sys.argv[1]
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOCKSTEP_HOME"] = str(Path(home) / "store")
        os.environ.pop("LOCKSTEP_DB_URL", None)
        print(json.dumps(CASES[case]()))

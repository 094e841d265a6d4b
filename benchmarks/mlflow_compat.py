"""The stock MLflow client against lockstep's server, MLflow's own server and FastTrackML;
the lockstep: plugin against MLflow's local SQLite store; reading TensorBoard and CSV logs.

    python benchmarks/mlflow_compat.py [--runs 10000] [--points 100000] [--no-peers]

Like for like: one MLflow client (MLflow 3 from `.venv-peers`) drives every server, each a
fresh process over a fresh SQLite file, one worker. Measured per server: per-call
`log_metric` (calls/s), `log_batch` of 1,000 metrics a request (points/s), `search_runs`
over --runs runs with a filter and `order_by` (ms, median of 5; the runs loaded through the
same client, 8 threads), `get_metric_history` of --points points (ms, median of 3).
Without a server: `mlflow.log_metric` per call through `lockstep:` (lockstep's plugin)
beside MLflow's `sqlite:` store, each in a fresh process, timed to the run ended (every
point stored). Reading logs: 100,000 TensorBoard scalars and 100,000 CSV cells read into
a run by the reader `lockstep run` uses (scalars/s, stored included).

Peers: `.venv-peers` (pip install mlflow) and `.venv-fml` (pip install fasttrackml).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server import (  # noqa: E402
    BASE_ENV,
    FML,
    MLFLOW,
    free_port,
    lockstep_server,
    mlflow_server,
    process,
)

CLIENT = """
import json, statistics, sys, time
from concurrent.futures import ThreadPoolExecutor
import mlflow
from mlflow.entities import Metric, Param
url, runs, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = mlflow.MlflowClient(url)
experiment = client.create_experiment(f"bench-{time.time_ns()}")
run = client.create_run(experiment).info.run_id
now = int(time.time() * 1000)
out = {}

calls = 1000
start = time.perf_counter()
for i in range(calls):
    client.log_metric(run, "single", float(i), timestamp=now, step=i)
out["log_metric_calls_per_s"] = calls / (time.perf_counter() - start)

batches = 50
start = time.perf_counter()
for b in range(batches):
    client.log_batch(run, metrics=[Metric(f"k{i % 10}", float(i), now, b * 100 + i // 10)
                                   for i in range(1000)])
out["log_batch_points_per_s"] = batches * 1000 / (time.perf_counter() - start)

series = client.create_run(experiment).info.run_id
for b in range(points // 1000):
    client.log_batch(series, metrics=[Metric("loss", float(b * 1000 + i), now, b * 1000 + i)
                                      for i in range(1000)])
timings = []
for _ in range(3):
    start = time.perf_counter()
    got = client.get_metric_history(series, "loss")
    timings.append(time.perf_counter() - start)
assert len(got) == points, len(got)
out["history_ms"] = statistics.median(timings) * 1000

def one(i):
    r = client.create_run(experiment).info.run_id
    client.log_batch(
        r,
        metrics=[Metric(f"m{k}", ((i * 7 + k) % 100) / 100, now, 0) for k in range(5)],
        params=[Param(f"p{k}", "a" if (i + k) % 3 == 0 else "b") for k in range(5)],
    )
start = time.perf_counter()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(one, range(runs)))
out["load_runs_s"] = time.perf_counter() - start
timings = []
for _ in range(5):
    start = time.perf_counter()
    found = client.search_runs(
        [experiment], "metrics.m0 > 0.5 and params.p0 = 'a'",
        order_by=["metrics.m1 DESC"], max_results=100,
    )
    timings.append(time.perf_counter() - start)
expected = sum(1 for i in range(runs) if (i * 7) % 100 > 50 and i % 3 == 0)
assert len(found) == min(100, expected), (len(found), expected)
out["search_ms"] = statistics.median(timings) * 1000
print(json.dumps(out))
"""

PER_CALL = """
import sys, time, mlflow
calls = int(sys.argv[1])
start = time.perf_counter()
with mlflow.start_run():
    for i in range(calls):
        mlflow.log_metric("loss", float(i), step=i)
print(calls / (time.perf_counter() - start))
"""

READ_LOGS = """
import json, sys, time
from pathlib import Path
import lockstep
from lockstep.tracking.api import open_workspace
from lockstep.tracking.metric_files import MetricFiles
from torch.utils.tensorboard import SummaryWriter

points = int(sys.argv[1])
writer = SummaryWriter("tb")
for step in range(points // 10):
    for k in range(10):
        writer.add_scalar(f"k{k}", step * 0.5, step)
writer.close()
rows = ["step," + ",".join(f"c{k}" for k in range(10))]
rows += [f"{s}," + ",".join(str(s * 0.5) for _ in range(10)) for s in range(points // 10)]
Path("metrics.csv").write_text("\\n".join(rows) + "\\n")
out = {}
for name, path in (("tensorboard", str(next(Path("tb").iterdir()))), ("csv", "metrics.csv")):
    run = lockstep.start(name=name)
    reader = MetricFiles(open_workspace().meta, run.id, Path.cwd(), Path(".capture"),
                         note=lambda _text: None)
    start = time.perf_counter()
    found = reader.finish([path])
    out[name] = points / (time.perf_counter() - start)
    assert found[0]["points"] == points, found
    run.finish()
print(json.dumps(out))
"""


def last_line(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    """The last line a benchmark process printed (its result); its error if it failed."""
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout.strip().splitlines()[-1]


def client_cases(url: str, runs: int, points: int) -> dict[str, float]:
    argv = [str(MLFLOW / "python"), "-c", CLIENT, url, str(runs), str(points)]
    return dict(json.loads(last_line(argv, BASE_ENV)))


def fml_server(port: int, directory: Path) -> list[str]:
    return [
        str(FML / "fml"),
        "server",
        "--listen-address",
        f"127.0.0.1:{port}",
        "--database-uri",
        f"sqlite://{directory}/fml.db",
    ]


def per_call(python: Path, uri: str, calls: int, cwd: Path) -> float:
    # Both sides as `lockstep run` sets the plugin up: the registry URI said outright (else
    # MLflow looks for a Spark session at every call, whichever store it writes to).
    env = {
        **BASE_ENV,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "1",
    }
    return float(last_line([str(python), "-c", PER_CALL, str(calls)], env, cwd))


def ratio(ours: float, theirs: float | None, higher_is_better: bool) -> str:
    if theirs is None:
        return "-"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    if not (MLFLOW / "python").exists():
        sys.exit(
            "the MLflow client comes from .venv-peers: python -m venv .venv-peers && "
            ".venv-peers/bin/pip install mlflow"
        )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        work = Path(tmp)
        with lockstep_server(work / "lockstep" / "store") as (url, _pid):
            print("lockstep server ...", file=sys.stderr)
            results["lockstep"] = client_cases(url, args.runs, args.points)
        peers = {} if args.no_peers else {"MLflow server": mlflow_server, "FastTrackML": fml_server}
        for name, command in peers.items():
            binary = Path(command(0, work)[0])
            if not binary.exists():
                print(f"{name}: not installed, skipped", file=sys.stderr)
                continue
            print(f"{name} ...", file=sys.stderr)
            directory = work / name.replace(" ", "-")
            directory.mkdir()
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            with process(command(port, directory), directory, BASE_ENV, f"{url}/health"):
                results[name] = client_cases(url, args.runs, args.points)

        print("plugin and local store ...", file=sys.stderr)
        plugin_dir = work / "plugin"
        plugin_dir.mkdir()
        plugin = per_call(Path(sys.executable), "lockstep:", 100_000, plugin_dir)
        sqlite_dir = work / "sqlite"
        sqlite_dir.mkdir()
        sqlite = (
            None
            if args.no_peers
            else per_call(MLFLOW / "python", f"sqlite:///{sqlite_dir}/mlflow.db", 1000, sqlite_dir)
        )
        logs_dir = work / "logs"
        logs_dir.mkdir()
        env = {**BASE_ENV, "LOCKSTEP_HOME": str(logs_dir / ".lockstep")}
        argv = [sys.executable, "-c", READ_LOGS, str(args.points)]
        reading = json.loads(last_line(argv, env, logs_dir))

    names = [n for n in ("MLflow server", "FastTrackML") if n in results]
    ours = results["lockstep"]
    print(
        f"\n## The stock MLflow client ({args.runs:,} runs searched, "
        f"{args.points:,}-point history)\n"
    )
    print("| case | lockstep server | " + " | ".join(names) + " | ratio to each |")
    print("|---|---|" + "---|" * len(names) + "---|")
    cases = [
        ("log_metric, one call each (calls/s)", "log_metric_calls_per_s", True, ",.0f"),
        ("log_batch, 1,000 metrics a request (points/s)", "log_batch_points_per_s", True, ",.0f"),
        ("search_runs, filter + order_by, 100 of them (ms)", "search_ms", False, ",.1f"),
        ("get_metric_history (ms)", "history_ms", False, ",.1f"),
        ("loading the runs, 8 threads (s)", "load_runs_s", False, ",.1f"),
    ]
    for label, key, higher, spec in cases:
        cells = [format(results[n][key], spec) for n in names]
        ratios = " / ".join(ratio(ours[key], results[n][key], higher) for n in names) or "-"
        print(f"| {label} | {format(ours[key], spec)} | " + " | ".join(cells) + f" | {ratios} |")
    print("\n## No server\n")
    print("| case | lockstep: plugin | MLflow sqlite: | ratio |")
    print("|---|---|---|---|")
    shown = "-" if sqlite is None else f"{sqlite:,.0f}"
    print(
        f"| mlflow.log_metric per call, to the run ended (calls/s) | {plugin:,.0f} | {shown} | "
        f"{ratio(plugin, sqlite, True)} |"
    )
    print("\n## Reading metric logs (outside the training process)\n")
    print("| log | scalars/s, stored |")
    print("|---|---|")
    for name, rate in reading.items():
        print(f"| {name} ({args.points:,} scalars) | {rate:,.0f} |")
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(
            json.dumps({"servers": results, "plugin": plugin, "sqlite": sqlite, "read": reading})
        )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)

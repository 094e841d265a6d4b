"""The team server under load, beside MLflow's tracking server and FastTrackML.

    python benchmarks/server.py [--clients 8] [--points 1000000] [--no-peers]

lockstep: `lockstep server --quiet` over a fresh SQLite store; each client a fresh
process logging ten keys a call through lockstep's own client (`lockstep.start`,
`run.log`) until it has logged --points points. Measured: points stored per second
(first client started to last client ended, every point stored: checked through the
API), p99 latency of a metric batch at the server (from its own histogram), the
server's largest resident memory (sampled every 50 ms); search over 100,000 runs and a
1,000,000-point series downsampled to 2,000 points, each through HTTP (median of 7);
`lockstep run -- python -c pass` against the server beside the local store.

Peers, each in its own environment (`.venv-peers` for MLflow, `.venv-fml` for
FastTrackML), with the MLflow client: `log_batch` of 1,000 points a call, `log_metric`
calls one at a time, and `search_runs` over the 1,000 runs those made.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MLFLOW = ROOT / ".venv-peers" / "bin"
FML = ROOT / ".venv-fml" / "bin"
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKSTEP_", "MLFLOW_"))}
# The default project's runs on a lockstep server.
RUNS = "/api/v1/projects/default/runs"

CLIENT = """
import sys, time, lockstep
points = int(sys.argv[1])
keys = [f"k{i}" for i in range(10)]
with lockstep.start(name=sys.argv[2]) as run:
    for step in range(points // 10):
        run.log(dict.fromkeys(keys, step * 0.5), step=step)
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@contextlib.contextmanager
def process(command: list[str], cwd: Path, env: dict[str, str], health: str) -> Iterator[int]:
    log = (cwd / "server.log").open("a")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)
    try:
        wait_for(health)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def lockstep_server(store: Path, db: str | None = None) -> Iterator[tuple[str, int]]:
    store.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**BASE_ENV, "LOCKSTEP_HOME": str(store)}
    command = [sys.executable, "-m", "lockstep", "server", "--quiet", "--port", str(port)]
    if db:
        command += ["--db", db]
    url = f"http://127.0.0.1:{port}"
    with process(command, store.parent, env, f"{url}/health") as pid:
        yield url, pid


def _rss_sampler(pid: int) -> tuple[threading.Event, list[int]]:
    import psutil

    stop, peak = threading.Event(), [0]

    def sample() -> None:
        proc = psutil.Process(pid)
        while not stop.wait(0.05):
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    return stop, peak


def _p99_ms(metrics_text: str, route: str) -> float:
    """The 99th percentile (a bucket's upper bound) of a route's latency histogram."""
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if line.startswith("lockstep_request_seconds_bucket") and f'route="{route}"' in line:
            bound = line.split('le="')[1].split('"')[0]
            buckets.append(
                (float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1]))
            )
    total = max(count for _, count in buckets)
    for bound, count in sorted(buckets):
        if count >= 0.99 * total:
            return bound * 1000
    return float("inf")


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL database at url, dropped afterwards."""
    import secrets

    import sqlalchemy as sa

    schema = f"lockstep_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def logging_case(work: Path, clients: int, points: int, db: str | None = None) -> dict[str, float]:
    store = work / ("load-pg" if db else "load") / "store"
    store.parent.mkdir(parents=True)
    with lockstep_server(store, db) as (url, pid):
        stop, peak = _rss_sampler(pid)
        env = {**BASE_ENV, "LOCKSTEP_TRACKING_URI": url}
        started = time.perf_counter()
        procs = []
        for i in range(clients):
            cwd = store.parent / f"client{i}"
            cwd.mkdir()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", CLIENT, str(points), f"c{i}"],
                    cwd=cwd,
                    env=env,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(err[-2000:])
        elapsed = time.perf_counter() - started
        stop.set()
        runs = httpx.get(f"{url}{RUNS}", timeout=60).json()["runs"]
        stored = sum(m[5] for r in runs for m in r["metrics"])
        p99 = _p99_ms(
            httpx.get(f"{url}/metrics").text, "/api/v1/projects/{project}/runs/{run_id}/metrics"
        )
    return {
        "points_per_s": stored / elapsed,
        "lost": clients * (points // 10) * 10 - stored,
        "p99_ms": p99,
        "rss_mib": peak[0] / (1 << 20),
        "seconds": elapsed,
    }


def _median_ms(call: object, repeat: int = 7) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def query_cases(work: Path) -> dict[str, float]:
    """Search over 100,000 runs and a downsampled 1,000,000-point series, through HTTP."""
    store = work / "query" / "store"
    store.parent.mkdir(parents=True)
    code = f"""
import os, sys
os.environ["LOCKSTEP_HOME"] = {str(store)!r}
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.tracking_lockstep import _populate
import lockstep
_populate(100_000)
with lockstep.start(name="long") as run:
    for step in range(1_000_000):
        run.log({{"loss": (step % 977) * 1e-3}}, step=step)
print(run.id)
"""
    made = subprocess.run(
        [sys.executable, "-c", code], env=BASE_ENV, capture_output=True, text=True, check=True
    )
    run_id = made.stdout.strip().splitlines()[-1]
    with lockstep_server(store) as (url, _pid), httpx.Client(base_url=url, timeout=60) as client:
        params = {"filter": "params.p0 > 0.005 and metrics.m1 >= 0.5", "sort": "-metrics.m0"}
        search = _median_ms(lambda: client.get(RUNS, params={**params, "limit": 100}))
        history = _median_ms(
            lambda: client.get(
                f"{RUNS}/{run_id}/history", params={"key": "loss", "max_points": 2000}
            )
        )
    return {"search_ms": search, "history_ms": history}


def run_overhead(work: Path) -> dict[str, float]:
    """`lockstep run -- python -c pass`, against the server and against the local store."""
    project = work / "overhead"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    command = [sys.executable, "-m", "lockstep", "run", "--", sys.executable, "-c", "pass"]
    bare = _median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat=5)
    local = _median_ms(
        lambda: subprocess.run(command, cwd=project, env=BASE_ENV, check=True, capture_output=True),
        repeat=5,
    )
    with lockstep_server(work / "overhead-store" / "store") as (url, _pid):
        env = {**BASE_ENV, "LOCKSTEP_TRACKING_URI": url}
        served = _median_ms(
            lambda: subprocess.run(command, cwd=project, env=env, check=True, capture_output=True),
            repeat=5,
        )
    return {"local_ms": local - bare, "server_ms": served - bare}


PEER_CLIENT = """
import json, statistics, sys, time
import mlflow
from mlflow.entities import Metric
client = mlflow.MlflowClient(sys.argv[1])
experiment = client.create_experiment(f"bench-{time.time_ns()}")
run = client.create_run(experiment)
batches, now = 50, int(time.time() * 1000)
start = time.perf_counter()
for b in range(batches):
    metrics = [Metric(f"k{i % 10}", float(i), now, b * 100 + i // 10) for i in range(1000)]
    client.log_batch(run.info.run_id, metrics=metrics)
batch_rate = batches * 1000 / (time.perf_counter() - start)
calls = 500
start = time.perf_counter()
for i in range(calls):
    client.log_metric(run.info.run_id, "single", float(i), step=i)
call_rate = calls / (time.perf_counter() - start)
for i in range(999):
    r = client.create_run(experiment)
    client.log_batch(r.info.run_id, metrics=[Metric("m0", float(i), now, 0)])
timings = []
for _ in range(7):
    start = time.perf_counter()
    client.search_runs(
        [experiment], "metrics.m0 > 10", order_by=["metrics.m0 DESC"], max_results=100
    )
    timings.append(time.perf_counter() - start)
print(json.dumps({"batch_points_per_s": batch_rate, "calls_per_s": call_rate,
                  "search_ms": statistics.median(timings) * 1000}))
"""


def mlflow_server(port: int, directory: Path) -> list[str]:
    """`mlflow server` over a SQLite file in directory, one worker."""
    return [
        str(MLFLOW / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{directory}/mlflow.db",
        "--workers",
        "1",
    ]


def peer_cases(work: Path) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    peers = {
        "MLflow server": (MLFLOW / "mlflow", mlflow_server),
        "FastTrackML": (
            FML / "fml",
            lambda port, d: [
                str(FML / "fml"),
                "server",
                "--listen-address",
                f"127.0.0.1:{port}",
                "--database-uri",
                f"sqlite://{d}/fml.db",
            ],
        ),
    }
    for name, (binary, command) in peers.items():
        if not binary.exists() or not (MLFLOW / "python").exists():
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        directory = work / name.replace(" ", "-")
        directory.mkdir()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(command(port, directory), directory, BASE_ENV, f"{url}/health"):
            result = subprocess.run(
                [str(MLFLOW / "python"), "-c", PEER_CLIENT, url],
                env=BASE_ENV,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
        if result.returncode != 0:
            print(f"{name} failed: {result.stderr[-1500:]}", file=sys.stderr)
            continue
        found[name] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def lockstep_client_rates(work: Path) -> dict[str, float]:
    """One client through lockstep's server: points/s logged ten keys a call, and run.log
    calls/s (the call returns once the point is buffered; a thread sends it)."""
    store = work / "one" / "store"
    store.parent.mkdir(parents=True)
    with lockstep_server(store) as (url, _pid):
        code = """
import time, lockstep
with lockstep.start() as run:
    start = time.perf_counter()
    for step in range(100_000):
        run.log({"single": float(step)}, step=step)
    calls = 100_000 / (time.perf_counter() - start)
print(calls)
"""
        env = {**BASE_ENV, "LOCKSTEP_TRACKING_URI": url}
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=store.parent,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return {"calls_per_s": float(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--points", type=int, default=1_000_000, help="points per client")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("LOCKSTEP_TEST_POSTGRES_URL"),
        help="also load a server on this PostgreSQL database (in a scratch schema)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lockstep-server-bench-", dir=ROOT))
    try:
        load = logging_case(work, args.clients, args.points)
        load_pg = None
        if args.postgres:
            with postgres_schema(args.postgres) as db:
                load_pg = logging_case(work, args.clients, args.points, db)
        queries = query_cases(work)
        overhead = run_overhead(work)
        single = lockstep_client_rates(work)
        peers = {} if args.no_peers else peer_cases(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"## lockstep server, SQLite, {args.clients} clients x {args.points:,} points\n")
    rows = [
        ("points stored per second, all clients", f"{load['points_per_s']:,.0f}", ">= 1,000,000"),
        ("points lost", f"{load['lost']:,.0f}", "0"),
        *(
            [
                (
                    "points stored per second, all clients, PostgreSQL",
                    f"{load_pg['points_per_s']:,.0f}",
                    ">= 500,000",
                ),
                ("points lost, PostgreSQL", f"{load_pg['lost']:,.0f}", "0"),
                (
                    "p99 metric batch latency, PostgreSQL (ms, bucket bound)",
                    f"{load_pg['p99_ms']:g}",
                    "<= 50",
                ),
            ]
            if load_pg
            else []
        ),
        (
            "p99 metric batch latency at the server (ms, bucket bound)",
            f"{load['p99_ms']:g}",
            "<= 50",
        ),
        ("server peak RSS (MiB)", f"{load['rss_mib']:.0f}", "<= 300"),
        (
            "search over 100,000 runs, limit 100, via HTTP (ms)",
            f"{queries['search_ms']:.1f}",
            "<= 50",
        ),
        (
            "1,000,000-point series downsampled to 2,000, via HTTP (ms)",
            f"{queries['history_ms']:.1f}",
            "<= 50",
        ),
        (
            "`lockstep run -- python -c pass` overhead: server / local (ms)",
            f"{overhead['server_ms']:.0f} / {overhead['local_ms']:.0f}",
            "server <= local + 100",
        ),
    ]
    print("| case | lockstep | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\n## Clients beside the peers (same machine, same run)\n")
    names = " | ".join(f"MLflow client + {p}" for p in peers)
    print(f"| case | lockstep client + server | {names} |")
    print("|---|---|" + "---|" * len(peers))
    rate = load["points_per_s"] / args.clients
    compared = [
        (
            f"points/s of one client (lockstep: ten keys a call, {args.clients - 1} others "
            "logging; peers: log_batch of 1,000)",
            f"{rate:,.0f}",
            [f"{v['batch_points_per_s']:,.0f}" for v in peers.values()],
        ),
        (
            "single-metric calls/s (lockstep: run.log, buffered; peers: log_metric, a request)",
            f"{single['calls_per_s']:,.0f}",
            [f"{v['calls_per_s']:,.0f}" for v in peers.values()],
        ),
        (
            "search, limit 100 (ms; lockstep over 100,000 runs, peers over 1,000)",
            f"{queries['search_ms']:.1f}",
            [f"{v['search_ms']:.1f}" for v in peers.values()],
        ),
    ]
    for label, ours, theirs in compared:
        print("| " + " | ".join([label, ours, *theirs]) + " |")


if __name__ == "__main__":
    main()

"""The server killed while clients log: every point arrives exactly once, and a client
killed during the outage is replayed by the next command on its machine."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import clean_env
from tests.serverproc import RUNS, free_port, serving
from tests.tracking.test_launcher import lockstep

LOGGER = """
import sys, time, lockstep
steps = int(sys.argv[1])
with lockstep.start(name=sys.argv[2]) as run:
    for step in range(steps):
        run.log({"x": float(step), "y": step * 0.5}, step=step)
        if step % 500 == 0:
            time.sleep(0.05)
print("done", flush=True)
"""

STALLER = """
import os, time, lockstep
with lockstep.start(name="stalled") as run:
    for step in range(1000):
        run.log({"y": float(step)}, step=step)
    run.flush()
    print("flushed", flush=True)
    while not os.path.exists("go"):
        time.sleep(0.02)
    for step in range(1000, 3000):
        run.log({"y": float(step)}, step=step)
    run.flush()
    print("spooled", flush=True)
    time.sleep(600)
"""


def _points(url: str, run_id: str, key: str) -> np.ndarray:  # type: ignore[type-arg]
    found = httpx.get(
        f"{url}{RUNS}/{run_id}/history",
        params={"key": key, "max_points": 100_000},
    ).json()
    return np.asarray(found["steps"])


@pytest.mark.parametrize(
    ("stop", "workers"),
    [(signal.SIGKILL, "1"), (signal.SIGTERM, "2")],
    ids=["killed", "stopped-with-two-workers"],
)
def test_a_server_killed_mid_run_loses_and_doubles_nothing(
    tmp_path: Path, stop: signal.Signals, workers: str
) -> None:
    """SIGKILL: the spool makes up for what the server lost; SIGTERM: the server answers
    what is in flight, then stops (several worker processes each do)."""
    served_dir = tmp_path / "served"
    served_dir.mkdir()
    port = free_port()
    steps = 20_000
    env = clean_env(
        LOCKSTEP_TRACKING_URI=f"http://127.0.0.1:{port}", LOCKSTEP_FLUSH_INTERVAL="0.05"
    )
    clients = []
    with serving(served_dir, "--workers", workers, port=port) as (url, server):
        for i in range(4):
            workdir = tmp_path / f"client{i}"
            workdir.mkdir()
            clients.append(
                subprocess.Popen(
                    [sys.executable, "-c", LOGGER, str(steps), f"c{i}"],
                    cwd=workdir,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + 60
        while len(httpx.get(f"{url}{RUNS}").json()["runs"]) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        server.send_signal(stop)  # mid-run, mid-batch for some
        server.wait(timeout=60)
    assert any(c.poll() is None for c in clients), "the outage must fall while they log"
    time.sleep(1.0)
    with serving(served_dir, "--workers", workers, port=port) as (url, _server):
        outputs = [c.communicate(timeout=120) for c in clients]
        for client, (_out, err) in zip(clients, outputs, strict=True):
            assert client.returncode == 0, err
        assert any("does not answer" in err for _, err in outputs)  # the outage was seen
        runs = httpx.get(f"{url}{RUNS}").json()["runs"]
        assert sorted(r["name"] for r in runs) == ["c0", "c1", "c2", "c3"]
        for run in runs:
            assert run["status"] == "finished"
            for key in ("x", "y"):
                stored = _points(url, run["id"], key)
                assert len(stored) == steps  # nothing lost, nothing twice
                assert (np.sort(stored) == np.arange(steps)).all()
    for i in range(4):
        assert not list((tmp_path / f"client{i}" / ".lockstep" / "spool").glob("*.jsonl"))


def test_a_client_killed_during_the_outage_is_replayed_later(tmp_path: Path) -> None:
    served_dir = tmp_path / "served"
    served_dir.mkdir()
    workdir = tmp_path / "client"
    workdir.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = clean_env(LOCKSTEP_TRACKING_URI=uri)
    with serving(served_dir, port=port) as (_url, server):
        client = subprocess.Popen(
            [sys.executable, "-c", STALLER],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "flushed"
        server.send_signal(signal.SIGKILL)
        server.wait()
    (workdir / "go").write_text("")
    assert client.stdout.readline().strip() == "spooled"
    client.send_signal(signal.SIGKILL)
    client.communicate()
    spooled = list((workdir / ".lockstep" / "spool").glob("*.jsonl"))
    assert len(spooled) == 1 and spooled[0].stat().st_size > 0
    with serving(served_dir, port=port) as (url, _server):
        listed = lockstep(workdir, "runs", "--json", env={"LOCKSTEP_TRACKING_URI": uri})
        assert listed.returncode == 0, listed.stderr
        [run] = json.loads(listed.stdout)
        assert run["name"] == "stalled"
        stored = _points(url, run["id"], "y")
        assert (np.sort(stored) == np.arange(3000)).all()
        assert run["status"] == "crashed"  # its process is gone: said so, not left running
        replayed = [
            line
            for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith("lockstep_spool_replayed_writes_total")
        ]
        assert replayed and float(replayed[0].split()[-1]) >= 1, replayed
    assert not spooled[0].exists()


def test_a_run_started_while_the_server_is_down_arrives_when_it_is_up(tmp_path: Path) -> None:
    served_dir, workdir = tmp_path / "served", tmp_path / "client"
    served_dir.mkdir()
    workdir.mkdir()
    (workdir / "job.py").write_text("print('accuracy 0.5')\nopen('out.txt', 'w').write('x')\n")
    port = free_port()
    env = {"LOCKSTEP_TRACKING_URI": f"http://127.0.0.1:{port}"}
    ran = lockstep(workdir, "run", "--name", "offline", "--", sys.executable, "job.py", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "does not answer" in ran.stderr and "accuracy 0.5" in ran.stdout
    with serving(served_dir, port=port):
        listed = lockstep(workdir, "runs", "--json", env=env)  # replays the spool first
        [run] = json.loads(listed.stdout)
        assert run["name"] == "offline" and run["status"] == "finished"
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        verified = lockstep(fresh, "verify", "offline", env=env)  # its objects came too
        assert verified.returncode == 0 and "IDENTICAL" in verified.stdout, verified.stderr
    down = lockstep(fresh, "runs", env=env)
    assert down.returncode == 1 and "cannot reach the lockstep server" in down.stderr


def test_a_frozen_server_does_not_hold_training_back(tmp_path: Path) -> None:
    """SIGSTOP: the server accepts connections and never answers. Clients give up on it
    after LOCKSTEP_SERVER_TIMEOUT, spool, and finish; after SIGCONT every point is
    there once."""
    served_dir = tmp_path / "served"
    served_dir.mkdir()
    port = free_port()
    steps = 20_000
    env = clean_env(
        LOCKSTEP_TRACKING_URI=f"http://127.0.0.1:{port}",
        LOCKSTEP_FLUSH_INTERVAL="0.05",
        LOCKSTEP_SERVER_TIMEOUT="1",
    )
    with serving(served_dir, port=port) as (url, server):
        workdir = tmp_path / "client"
        workdir.mkdir()
        client = subprocess.Popen(
            [sys.executable, "-c", LOGGER, str(steps), "frozen"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not httpx.get(f"{url}{RUNS}").json()["runs"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.send_signal(signal.SIGSTOP)
        try:
            _out, err = client.communicate(timeout=120)  # finishes while the server sleeps
        finally:
            server.send_signal(signal.SIGCONT)
        assert client.returncode == 0, err
        assert "does not answer" in err
        listed = lockstep(workdir, "runs", "--json", env={"LOCKSTEP_TRACKING_URI": url})
        [run] = json.loads(listed.stdout)
        assert run["status"] == "finished"
        for key in ("x", "y"):
            stored = _points(url, run["id"], key)
            assert len(stored) == steps and (np.sort(stored) == np.arange(steps)).all()

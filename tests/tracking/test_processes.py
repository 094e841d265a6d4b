"""Real processes: exits, signals, SIGKILL mid-logging, and concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lockstep
from lockstep.core.status import RunStatus
from tests.conftest import Backend, run_python

FLUSH = 0.2


def child_env(backend: Backend, **extra: str) -> dict[str, str]:
    return {**backend.env(), "LOCKSTEP_FLUSH_INTERVAL": str(FLUSH), **extra}


def test_run_left_open_is_finished_at_exit(project: Backend, tmp_path: Path) -> None:
    result = run_python(
        """
        import lockstep
        run = lockstep.start(name="open")
        run.log({"x": 1.0})
        """,
        env=child_env(project),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    stored = lockstep.get_run("open")
    assert stored.status is RunStatus.FINISHED
    assert stored.metrics == {"x": 1.0}


def test_uncaught_exception_without_context_marks_failed(project: Backend, tmp_path: Path) -> None:
    result = run_python(
        """
        import lockstep
        run = lockstep.start(name="crashy")
        raise RuntimeError("model diverged")
        """,
        env=child_env(project),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    stored = lockstep.get_run("crashy")
    assert stored.status is RunStatus.FAILED
    assert stored.error is not None and "model diverged" in stored.error


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_marks_the_run_killed(project: Backend, tmp_path: Path, signum: int) -> None:
    script = textwrap.dedent(
        """
        import sys, time, lockstep
        with lockstep.start(name="sig") as run:
            print("ready", flush=True)
            for step in range(10**9):
                run.log({"x": float(step)})
                time.sleep(0.001)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **child_env(project)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    process.send_signal(signum)
    process.communicate(timeout=30)
    stored = lockstep.get_run("sig")
    assert stored.status is RunStatus.KILLED
    assert stored.metric_summaries["x"].count > 0


def test_sigkill_mid_logging_loses_at_most_one_flush_interval(
    project: Backend, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import sys, time, lockstep
        run = lockstep.start(name="victim")
        print(run.id, flush=True)
        step = 0
        while True:
            run.log({"x": float(step), "y": 2.0 * step}, step=step)
            print(step, time.time(), flush=True)
            step += 1
            time.sleep(0.0005)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **child_env(project)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    deadline = time.time() + 2.5
    logged: list[tuple[int, float]] = []
    while time.time() < deadline:
        step, when = process.stdout.readline().split()
        logged.append((int(step), float(when)))
    killed_at = time.time()
    process.kill()
    process.communicate(timeout=30)
    stored = lockstep.get_run("victim")  # also reaps the dead run
    assert stored.status is RunStatus.CRASHED
    assert "ended without finishing" in (stored.error or "")
    steps = set(stored.metric_history("x").steps.tolist())
    # Everything logged more than one flush interval (plus the time one write takes) before
    # the kill is stored.
    must_have = [step for step, when in logged if when < killed_at - FLUSH - 0.3]
    assert len(must_have) > 100
    assert not [s for s in must_have if s not in steps]
    assert len(stored.metric_history("y")) == len(steps)


def test_eight_processes_log_concurrently_without_loss(project: Backend, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, lockstep
        worker = int(sys.argv[1])
        with lockstep.start(experiment="parallel", name=f"w{worker}",
                            params={"worker": worker}) as run:
            for step in range(3000):
                run.log({"a": float(step), "b": float(worker), "c": 1.0}, step=step)
                if step % 500 == 0:
                    run.set_tag(f"t{step}", str(step))
                    run.flush()
        """
    )
    env = {**os.environ, **child_env(project, LOCKSTEP_FLUSH_INTERVAL="0.02")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        assert "locked" not in err and "Error" not in err, err
    found = lockstep.runs(experiment="parallel")
    assert len(found) == 8
    for run in found:
        assert run.status is RunStatus.FINISHED
        assert {k: s.count for k, s in run.metric_summaries.items()} == {
            "a": 3000,
            "b": 3000,
            "c": 3000,
        }
        assert run.metric_history("a").values.tolist() == [float(s) for s in range(3000)]
        assert len(run.tags) == 6


def test_other_host_run_is_crashed_after_missed_heartbeats(project: Backend) -> None:
    from lockstep.core.ids import new_run_id
    from lockstep.tracking import liveness
    from lockstep.tracking.api import open_workspace

    meta = open_workspace().meta
    stale, fresh = new_run_id(), new_run_id()
    now = time.time()
    for run_id, beat in ((stale, now - 3600), (fresh, now)):
        meta.create_run(
            run_id=run_id,
            name=run_id,
            experiment="remote",
            start_time=beat,
            host="some-other-host",
            pid=1,
            pid_start=None,
        )
        meta.heartbeat(run_id, beat)
    assert liveness.reap_dead_runs(meta, grace=60) == [stale]
    assert meta.get_run(stale).status is RunStatus.CRASHED
    assert meta.get_run(fresh).status is RunStatus.RUNNING


def test_recycled_pid_is_not_mistaken_for_the_run(project: Backend) -> None:
    from lockstep.core.ids import new_run_id
    from lockstep.tracking import liveness
    from lockstep.tracking.api import open_workspace

    meta = open_workspace().meta
    run_id = new_run_id()
    # Our own pid is alive, but it started at a different time than the run recorded.
    meta.create_run(
        run_id=run_id,
        name="recycled",
        experiment="e",
        start_time=time.time(),
        host=liveness.host_name(),
        pid=os.getpid(),
        pid_start=1.0,
    )
    assert liveness.reap_dead_runs(meta, grace=60) == [run_id]
    record = meta.get_run(run_id)
    assert record.status is RunStatus.CRASHED
    assert json.loads(json.dumps(record.to_json()))["status"] == "crashed"

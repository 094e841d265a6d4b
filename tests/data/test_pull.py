"""Pull between directory remotes: what changed on the remote since reaches this store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env
from tests.tracking.test_launcher import lockstep, show


def test_a_run_pulled_while_running_is_updated_once_it_has_ended(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "job.py").write_text(
        "import os, time, lockstep\n"
        "with lockstep.start() as run:\n"
        "    run.log({'loss': 1.0})\n"
        "    run.flush()\n"
        "    print('ready', flush=True)\n"
        "    while os.path.exists('block'):\n"
        "        time.sleep(0.05)\n"
        "    run.log({'loss': 0.5})\n"
    )
    (origin / "block").write_text("")
    shared = tmp_path / "remote"
    assert lockstep(origin, "init").returncode == 0
    assert lockstep(origin, "remote", "add", "team", str(shared)).returncode == 0
    job = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "run", "--name", "long", "--", sys.executable, "job.py"],
        cwd=origin,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert job.stdout is not None and job.stdout.readline().strip() == "ready"
    assert lockstep(origin, "push").returncode == 0  # pushed while running
    victim = tmp_path / "victim"
    victim.mkdir()
    assert lockstep(victim, "init").returncode == 0
    assert lockstep(victim, "remote", "add", "team", str(shared)).returncode == 0
    assert lockstep(victim, "pull").returncode == 0
    assert show(victim, "long")["status"] in ("running", "crashed")
    (origin / "block").unlink()
    job.communicate(timeout=60)
    assert job.returncode == 0
    assert lockstep(origin, "push").returncode == 0
    pulled = lockstep(victim, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert "1 runs that had not ended then, updated" in pulled.stdout
    record = show(victim, "long")
    assert record["status"] == "finished"
    assert record["metrics"]["loss"] == 0.5
    again = lockstep(victim, "pull")
    assert "updated" not in again.stdout

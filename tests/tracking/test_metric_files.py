"""Metric logs read into the run while the command runs: each script below waits until its
own points are in the store before it ends, so it passes only if they arrived live."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep, show

# Polls the run's record from inside the command; exit 3 if the points never arrive.
WAIT_FOR = """
import os, sys, time
import lockstep
import lockstep.errors

def wait_for(key, count):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:  # `lockstep run` records the run while the command already runs
            record = lockstep.get_run(os.environ["LOCKSTEP_RUN_ID"]).record
        except lockstep.errors.RunNotFound:
            time.sleep(0.05)
            continue
        summary = record.metrics.get(key)
        if summary is not None and summary.count >= count:
            print(f"{key}: {summary.count} points while running", flush=True)
            return
        time.sleep(0.2)
    sys.exit(3)
"""

TENSORBOARD_LIVE = (
    WAIT_FOR
    + """
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter("tb/run")
for step in range(10):
    writer.add_scalar("loss", 1.0 / (step + 1), step, walltime=1_700_000_000.0 + step)
writer.flush()
wait_for("loss", 10)
writer.add_scalar("loss", 0.01, 10, walltime=1_700_000_010.0)
writer.close()
"""
)

CSV_LIVE = (
    WAIT_FOR
    + """
os.makedirs("logs", exist_ok=True)
with open("logs/metrics.csv", "w") as out:
    out.write("epoch,step,train_loss\\n")
    for step in range(5):
        out.write(f"0,{step},{0.5 / (step + 1)}\\n")
    out.flush()
    wait_for("train_loss", 5)
    out.write("1,5,0.01\\n")
"""
)


def metric_json(root: Path, key: str) -> dict:  # type: ignore[type-arg]
    result = lockstep(root, "metrics", "last", key, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_tensorboard_scalars_arrive_while_the_command_runs_with_their_wall_times(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    root = make_repo(tmp_path / "tb", {"train.py": TENSORBOARD_LIVE, ".gitignore": "tb/\n"})
    done = lockstep(root, "run", "--", sys.executable, "train.py", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loss: 10 points while running" in done.stdout
    found = metric_json(root, "loss")
    assert found["steps"] == list(range(11))  # the last point too, read when it ended
    assert found["times"][:3] == [1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0]
    assert found["times"][-1] == 1_700_000_010.0
    files = show(root)["command"]["metrics_from_files"]
    assert [f["points"] for f in files] == [11]
    assert files[0]["path"].startswith("tb/run/events.out.tfevents.")


def test_csv_rows_arrive_while_the_command_runs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "csv", {"train.py": CSV_LIVE, ".gitignore": "logs/\n"})
    done = lockstep(root, "run", "--", sys.executable, "train.py", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train_loss: 5 points while running" in done.stdout
    found = metric_json(root, "train_loss")
    assert found["steps"] == [0, 1, 2, 3, 4, 5]
    assert found["values"][-1] == 0.01
    assert set(show(root)["metrics"]) == {"train_loss", "epoch"}


def test_a_key_the_script_logs_itself_is_left_to_it(tmp_path: Path) -> None:
    both = (
        WAIT_FOR
        + """
os.makedirs("logs", exist_ok=True)
run = lockstep.start()
with open("logs/metrics.csv", "w") as out:
    out.write("step,loss,lr\\n")
    for step in range(5):
        run.log({"loss": 9.0}, step=step)
        out.write(f"{step},{1.0 / (step + 1)},0.1\\n")
    out.flush()
    wait_for("lr", 5)
run.finish()
"""
    )
    root = make_repo(tmp_path / "both", {"train.py": both, ".gitignore": "logs/\n"})
    done = lockstep(root, "run", "--", sys.executable, "train.py", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert metric_json(root, "loss")["values"] == [9.0] * 5  # the script's own, not doubled
    (entry,) = show(root)["command"]["metrics_from_files"]
    assert entry["keys"] == ["lr"] and entry["skipped"] == ["loss"]


def _event_file(tmp_path: Path) -> Path:
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in range(5):
        writer.add_scalar("loss", float(step), step, walltime=100.0 + step)
    writer.close()
    return next((tmp_path / "tb").iterdir())


def test_a_record_being_written_waits_for_the_next_read(tmp_path: Path) -> None:
    from lockstep.tracking.metric_files import EventRecords, _scalars

    whole = _event_file(tmp_path).read_bytes()
    growing = tmp_path / "events.out.tfevents.growing"
    growing.write_bytes(whole[:-7])  # the last record cut short, as a writer mid-write
    records = EventRecords(growing)
    first = _scalars(records.read(), "")
    assert [p.step for p in first] == [0, 1, 2, 3]
    assert _scalars(records.read(), "") == []  # still incomplete: nothing read twice
    growing.write_bytes(whole)
    rest = _scalars(records.read(), "")
    assert [(p.key, p.step, p.value, p.time) for p in rest] == [("loss", 4, 4.0, 104.0)]


def test_a_damaged_record_is_refused(tmp_path: Path) -> None:
    from lockstep.tracking.metric_files import CorruptLog, EventRecords

    data = bytearray(_event_file(tmp_path).read_bytes())
    data[-6] ^= 0xFF  # a bit flipped inside the last record's data
    damaged = tmp_path / "events.out.tfevents.damaged"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CorruptLog):
        EventRecords(damaged).read()

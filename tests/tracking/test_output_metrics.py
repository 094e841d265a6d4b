"""`lockstep run --metrics-from-output`: what an unmodified script prints becomes its
run's metrics, a rerun reads its output the same way, so `verify` compares curves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep, show

# Prints like nanoGPT, with a progress bar and a version line that must not be read.
PRINTS = """\
import random
import sys
print("torch 2.13.0 on cpu")
loss = 5.0
for it in range(0, 50, 10):
    loss *= 0.5 + random.random() * 0.1
    print(f"iter {it}: loss {loss:.4f}, time 12.3ms, mfu 1.2%")
    print(f" {it * 2}%|####      | {it}/50 [00:01<00:02, 3.1it/s]", file=sys.stderr)
print(f"step 50: train loss {loss:.4f}, val loss {loss * 1.1:.4f}")
"""

LOGS_ITSELF = """\
import lockstep
with lockstep.start() as run:
    run.log({"loss": 1.0}, step=0)
print("iter 0: loss 9.9, acc 0.5")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_repo(
        tmp_path / "project",
        {"prints.py": PRINTS, "logs.py": LOGS_ITSELF, ".gitignore": ".lockstep/\n"},
    )
    assert lockstep(root, "init").returncode == 0
    return root


def history(root: Path, key: str) -> list[tuple[int, float]]:
    result = lockstep(root, "metrics", "last", key, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    return list(zip(found["steps"], found["values"], strict=True))


def test_printed_metrics_become_the_runs_metrics_and_verify_compares_them(
    project: Path,
) -> None:
    done = lockstep(
        project, "run", "--seed", "3", "--metrics-from-output", "--", sys.executable, "prints.py"
    )
    assert done.returncode == 0, done.stderr
    assert "metric points read from the output" in done.stderr
    record = show(project)
    assert set(record["metrics"]) == {"loss", "train_loss", "val_loss"}
    assert [step for step, _ in history(project, "loss")] == [0, 10, 20, 30, 40]
    assert record["command"]["metrics_from_output"]["points"] == 7
    # Not the version line, not the progress bar on stderr.
    assert "torch" not in record["metrics"] and "it" not in record["metrics"]
    verified = lockstep(project, "verify", "last")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "IDENTICAL" in verified.stdout
    rerun = json.loads(lockstep(project, "runs", "--json", "--limit", "1").stdout)[0]
    assert set(rerun["metrics"]) == {"loss", "train_loss", "val_loss"}


def test_a_different_seed_is_judged_on_the_printed_curve(project: Path) -> None:
    first = lockstep(
        project, "run", "--seed", "3", "--metrics-from-output", "--", sys.executable, "prints.py"
    )
    second = lockstep(
        project, "run", "--seed", "4", "--metrics-from-output", "--", sys.executable, "prints.py"
    )
    assert first.returncode == second.returncode == 0
    ids = [r["id"] for r in json.loads(lockstep(project, "runs", "--json").stdout)]
    judged = lockstep(project, "verify", ids[1], "--against", ids[0])
    assert judged.returncode == 1
    assert "loss" in judged.stdout


def test_keys_the_script_logs_itself_are_left_to_it(project: Path) -> None:
    done = lockstep(project, "run", "--metrics-from-output", "--", sys.executable, "logs.py")
    assert done.returncode == 0, done.stderr
    assert "left to the script's own logging: loss" in done.stderr
    record = show(project)
    assert record["metrics"]["loss"] == 1.0 and record["metrics"]["acc"] == 0.5


def test_off_by_default_and_on_by_config(project: Path) -> None:
    assert lockstep(project, "run", "--", sys.executable, "prints.py").returncode == 0
    assert show(project)["metrics"] == {}
    (project / ".lockstep" / "config.toml").write_text(
        '[capture]\nmetrics_from_output = true\nmetrics_pattern = "val loss (?P<val>[0-9.]+)"\n'
    )
    assert lockstep(project, "run", "--", sys.executable, "prints.py").returncode == 0
    record = show(project)
    assert set(record["metrics"]) == {"val"}
    assert record["command"]["metrics_from_output"]["pattern"] == "val loss (?P<val>[0-9.]+)"


def test_a_bad_pattern_is_refused_before_the_command_runs(project: Path) -> None:
    (project / ".lockstep" / "config.toml").write_text(
        '[capture]\nmetrics_from_output = true\nmetrics_pattern = "loss ([0-9.]+)"\n'
    )
    refused = lockstep(project, "run", "--", sys.executable, "-c", "open('ran', 'w')")
    assert refused.returncode == 2
    assert "metrics_pattern needs named groups" in refused.stderr
    assert not (project / "ran").exists()


# Lightning's CSVLogger: a row per log call, empty cells for metrics not in that call.
WRITES_CSV = """\
import os
import random
os.makedirs("logs/version_0", exist_ok=True)
rows = ["epoch,step,train_loss,val_loss"]
loss = 1.0
for epoch in range(3):
    loss *= 0.5 + random.random() * 0.1
    rows.append(f"{epoch},{epoch * 10 + 9},{loss:.5f},")
    rows.append(f"{epoch},{epoch * 10 + 9},,{loss * 1.2:.5f}")
with open("logs/version_0/metrics.csv", "w") as out:
    out.write("\\n".join(rows) + "\\n")
with open("logs/other.csv", "w") as out:
    out.write("step,label\\n1,cat\\n")
"""


def test_csv_metric_logs_the_run_writes_become_its_metrics(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "csvproject",
        {"train.py": WRITES_CSV, ".gitignore": ".lockstep/\nlogs/\n"},
    )
    assert lockstep(root, "init").returncode == 0
    done = lockstep(root, "run", "--seed", "1", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    assert "metric points read from logs/version_0/metrics.csv" in done.stderr
    record = show(root)
    assert set(record["metrics"]) == {"train_loss", "val_loss", "epoch"}
    assert [step for step, _ in history(root, "train_loss")] == [9, 19, 29]
    assert record["command"]["metrics_from_files"][0]["path"] == "logs/version_0/metrics.csv"
    # other.csv has a step column, but a column of text: not a metric log (and not named
    # metrics.csv anyway).
    assert "label" not in record["metrics"]
    verified = lockstep(root, "verify", "last")
    assert verified.returncode == 0 and "IDENTICAL" in verified.stdout, verified.stdout


# PyTorch's SummaryWriter (what Lightning's and Transformers' TensorBoard loggers use),
# and two writers logging the same tag, as Keras does for train and validation.
WRITES_TENSORBOARD = """\
from torch.utils.tensorboard import SummaryWriter
train = SummaryWriter("runs/exp/train")
valid = SummaryWriter("runs/exp/validation")
for step in range(0, 50, 5):
    train.add_scalar("loss", 1.0 / (step + 1), step)
    valid.add_scalar("loss", 2.0 / (step + 1), step)
train.add_text("note", "not a scalar", 0)
train.close()
valid.close()
"""


@pytest.mark.slow
def test_tensorboard_scalars_the_run_writes_become_its_metrics(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    root = make_repo(
        tmp_path / "tbproject",
        {"train.py": WRITES_TENSORBOARD, ".gitignore": ".lockstep/\nruns/\n"},
    )
    assert lockstep(root, "init").returncode == 0
    done = lockstep(root, "run", "--", sys.executable, "train.py", timeout=300)
    assert done.returncode == 0, done.stderr
    record = show(root)
    assert set(record["metrics"]) == {"train/loss", "validation/loss"}
    steps_values = history(root, "validation/loss")
    assert [s for s, _ in steps_values] == list(range(0, 50, 5))
    assert steps_values[1][1] == pytest.approx(2.0 / 6)
    sources = {f["path"].split("/")[2] for f in record["command"]["metrics_from_files"]}
    assert sources == {"train", "validation"}

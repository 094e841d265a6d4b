"""The audit never changes what it watches, and counts steps as the program takes them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.tracking.test_launcher import lockstep, show

torch = pytest.importorskip("torch")

TRAIN = textwrap.dedent("""
    import sys, torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    if "--compile" in sys.argv:
        model = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 16), torch.randn(64, 4)
    for step in range(6):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), "ckpt.pt")
    print("loss", loss.item())
""")


def audited_and_plain(project: Path, *flags: str) -> tuple[dict, list[dict], str]:  # type: ignore[type-arg]
    plain = lockstep(project, "run", "--name", "plain", "--", sys.executable, "train.py", *flags)
    assert plain.returncode == 0, plain.stderr
    audit = lockstep(
        project,
        "audit",
        "--steps",
        "3",
        "--json",
        "--",
        sys.executable,
        "train.py",
        *flags,
        timeout=600,
    )
    assert audit.returncode == 0, audit.stderr
    runs = [show(project, run_id) for run_id in json.loads(audit.stdout)["runs"]]
    return show(project, "plain"), runs, audit.stderr


def outputs(record: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {o["path"]: o["digest"] for o in record["outputs"]}


def test_an_audited_eager_run_writes_bitwise_what_the_plain_run_writes(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    plain, audited, _ = audited_and_plain(tmp_path)
    for run in audited:
        assert outputs(run) == outputs(plain)
        assert len(run["tensor_fingerprints"]["steps"]) == 3
    stdout = {r["command"]["stdout"]["digest"] for r in (plain, *audited)}
    assert len(stdout) == 1  # the printed loss is bitwise the same too


@pytest.mark.slow
def test_an_audited_compiled_run_writes_bitwise_what_the_plain_run_writes(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    plain, audited, stderr = audited_and_plain(tmp_path, "--compile")
    for run in audited:
        assert outputs(run) == outputs(plain), "the audit changed the compiled numerics"
        steps = run["tensor_fingerprints"]["steps"]
        assert len(steps) == 3
        # The compiled model's batch, output, gradients and updated parameters are watched.
        phases = {record[0] for record in steps[0]}
        assert phases == {"data", "forward", "backward", "update"}
    # Nothing of the watch was traced into the compiled graph (no graph break on it).
    assert "Graph break" not in stderr and "fingerprint" not in stderr


HAND_WRITTEN_SGD = textwrap.dedent("""
    import torch
    torch.manual_seed(0)
    w = torch.nn.Linear(8, 1)
    x, y = torch.randn(256, 8), torch.randn(256, 1)
    for epoch in range(2):
        for i in range(0, 256, 16):
            loss = ((w(x[i:i + 16]) - y[i:i + 16]) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                for p in w.parameters():
                    p -= 0.1 * p.grad
                    p.grad.zero_()
    print("loss", loss.item())
""")


def test_a_hand_written_update_loop_is_watched_for_exactly_the_steps_asked(
    tmp_path: Path,
) -> None:
    (tmp_path / "sgd.py").write_text(HAND_WRITTEN_SGD)
    audit = lockstep(tmp_path, "audit", "--steps", "3", "--json", "--", sys.executable, "sgd.py")
    assert audit.returncode == 0, audit.stderr
    result = json.loads(audit.stdout)
    assert result["diverged"] is False
    for run_id in result["runs"]:
        steps = show(tmp_path, run_id)["tensor_fingerprints"]["steps"]
        assert len(steps) == 3
        for step in steps:
            names = [(phase, name) for phase, name, _ in step]
            assert names[:3] == [
                ("data", "batch"),
                ("forward", "Linear:input"),
                ("forward", "Linear"),
            ]
            assert sorted(names[3:5]) == [
                ("backward", "Linear.bias.grad"),
                ("backward", "Linear.weight.grad"),
            ]
            assert names[5:] == [("update", "Linear.weight"), ("update", "Linear.bias")]
        # Consecutive steps saw different parameters: the update was watched after it ran.
        updates = [[fp for phase, _, fp in step if phase == "update"] for step in steps]
        assert updates[0] != updates[1] != updates[2]


def test_watch_stores_what_it_has_when_the_run_ends_early(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import torch, lockstep, lockstep.torch
        with lockstep.start(name="short"):
            model = torch.nn.Linear(4, 1)
            lockstep.torch.watch(model, steps=5)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for _ in range(2):
                opt.zero_grad()
                model(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
    """)
    (tmp_path / "short.py").write_text(script)
    assert lockstep(tmp_path, "init").returncode == 0
    ran = lockstep(tmp_path, "run", "--", sys.executable, "short.py")
    assert ran.returncode == 0, ran.stderr
    steps = show(tmp_path, "last")["tensor_fingerprints"]["steps"]
    assert len(steps) == 2

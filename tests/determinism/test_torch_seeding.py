"""PyTorch seeding through `lockstep run` and the lockstep.torch helpers (CPU; CUDA if present)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_python
from tests.tracking.test_launcher import lockstep, show

torch = pytest.importorskip("torch")

TRAINING = textwrap.dedent("""
    import torch
    from torch.utils.data import DataLoader, TensorDataset, random_split
    import lockstep.torch

    data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    train, _ = random_split(data, [48, 16], generator=lockstep.torch.generator())
    loader = DataLoader(train, batch_size=8, shuffle=True, generator=lockstep.torch.generator(),
                        num_workers=2, worker_init_fn=lockstep.torch.worker_init_fn)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    print(repr(float(loss)), repr(float(sum(p.sum() for p in model.parameters()))))
""")


def test_unmodified_torch_script_repeats_under_the_same_seed(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAINING)
    assert lockstep(tmp_path, "init").returncode == 0
    runs = [
        lockstep(tmp_path, "run", "--seed", str(seed), "--", sys.executable, "train.py")
        for seed in (21, 21, 22)
    ]
    for result in runs:
        assert result.returncode == 0, result.stderr
    assert runs[0].stdout == runs[1].stdout != runs[2].stdout
    record = show(tmp_path)
    assert record["seed"]["libraries"]["torch"] == 22
    state = record["determinism"]["torch"]
    assert state["deterministic_algorithms"] is False
    assert state["num_threads"] >= 1


def test_deterministic_run_turns_on_torch_flags(tmp_path: Path) -> None:
    (tmp_path / "flags.py").write_text(
        "import torch\nprint(torch.are_deterministic_algorithms_enabled(), "
        "torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)\n"
    )
    assert lockstep(tmp_path, "init").returncode == 0
    result = lockstep(tmp_path, "run", "--deterministic", "--", sys.executable, "flags.py")
    assert result.stdout.strip() == "True False True", result.stderr
    assert show(tmp_path)["determinism"]["torch"]["deterministic_algorithms"] is True


def test_generator_and_seed_everything_from_python(tmp_path: Path) -> None:
    code = """
        import json, torch, lockstep, lockstep.torch
        seeds = lockstep.seed_everything(9)
        a = torch.rand(3).tolist()
        g = lockstep.torch.generator(5)
        b = torch.rand(3, generator=g).tolist()
        print(json.dumps([seeds["torch"], a, b]))
    """
    first = run_python(code, env={}, cwd=tmp_path)
    second = run_python(code, env={}, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    seed, _, _ = json.loads(first.stdout)
    assert seed == 9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_is_seeded_too(tmp_path: Path) -> None:
    (tmp_path / "cuda.py").write_text(
        "import torch\nprint(torch.rand(4, device='cuda').tolist())\n"
    )
    assert lockstep(tmp_path, "init").returncode == 0
    outs = [
        lockstep(tmp_path, "run", "--seed", "3", "--", sys.executable, "cuda.py").stdout
        for _ in range(2)
    ]
    assert outs[0] == outs[1]

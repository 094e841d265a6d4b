"""`lockstep audit`: real training scripts run twice; the first diverging tensor is named."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.tracking.test_launcher import lockstep

torch = pytest.importorskip("torch")

HEADER = "import time, torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"

CLEAN = HEADER + textwrap.dedent("""
    data = TensorDataset(torch.randn(96, 8), torch.randn(96, 1))
    loader = DataLoader(data, batch_size=16, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
""")

FORWARD_NOISE = HEADER + textwrap.dedent("""
    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gen = torch.Generator().manual_seed(time.time_ns())
        def forward(self, x):
            return x + 0.01 * torch.randn(x.shape, generator=self.gen)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), Noisy(), torch.nn.ReLU(),
                                torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(4):
        opt.zero_grad()
        model(torch.randn(16, 8)).pow(2).mean().backward()
        opt.step()
""")

BACKWARD_NOISE = HEADER + textwrap.dedent("""
    gen = torch.Generator().manual_seed(time.time_ns())
    class NoisyGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()
        @staticmethod
        def backward(ctx, grad):
            return grad + 1e-3 * torch.randn(grad.shape, generator=gen)
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = torch.nn.Linear(8, 16)
            self.second = torch.nn.Linear(16, 1)
        def forward(self, x):
            return self.second(NoisyGrad.apply(self.first(x)))
    model = Block()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(3):
        opt.zero_grad()
        model(torch.randn(16, 8)).pow(2).mean().backward()
        opt.step()
""")

CLOCK_SHUFFLE = HEADER + textwrap.dedent("""
    data = TensorDataset(torch.randn(96, 8), torch.randn(96, 1))
    loader = DataLoader(data, batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(time.time_ns()))
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
""")


def audit(tmp_path: Path, script: str, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    (tmp_path / "train.py").write_text(script)
    result = lockstep(
        tmp_path,
        "audit",
        "--steps",
        "3",
        "--json",
        *args,
        "--",
        sys.executable,
        "train.py",
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_clean_unseeded_script_matches_bit_for_bit(tmp_path: Path) -> None:
    code, report = audit(tmp_path, CLEAN)
    assert code == 0 and report["diverged"] is False
    assert report["steps_watched"] == 3


def test_forward_noise_from_a_clock_seeded_generator_is_named(tmp_path: Path) -> None:
    code, report = audit(tmp_path, FORWARD_NOISE)
    assert code == 1
    divergence = report["divergence"]
    assert (divergence["step"], divergence["phase"], divergence["name"]) == (
        0,
        "forward",
        "Sequential.1",
    )
    assert divergence["origin"] is True
    assert any("not derived from the run seed" in c for c in divergence["causes"])


def test_backward_only_divergence_is_named_as_backward(tmp_path: Path) -> None:
    code, report = audit(tmp_path, BACKWARD_NOISE)
    assert code == 1
    divergence = report["divergence"]
    assert divergence["phase"] == "backward" and divergence["step"] == 0
    assert divergence["name"].startswith("Block.first.")


def test_clock_seeded_shuffling_is_named_as_the_data_batch(tmp_path: Path) -> None:
    code, report = audit(tmp_path, CLOCK_SHUFFLE)
    assert code == 1
    assert report["divergence"]["phase"] == "data"
    assert report["divergence"]["name"] == "data batch"
    assert any("generator=lockstep.torch.generator()" in c for c in report["divergence"]["causes"])


def test_diff_tensors_between_audited_runs(tmp_path: Path) -> None:
    code, report = audit(tmp_path, FORWARD_NOISE)
    assert code == 1
    first, second = report["runs"]
    result = lockstep(tmp_path, "diff", first, second, "--tensors", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["divergence"]["name"] == "Sequential.1"


def test_audit_needs_a_command_and_torch(tmp_path: Path) -> None:
    assert lockstep(tmp_path, "audit").returncode == 2
    result = lockstep(tmp_path, "audit", "--", sys.executable, "-c", "print(1)")
    assert result.returncode == 2 and "recorded no tensors" in result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_atomics_diverge_until_deterministic(tmp_path: Path) -> None:
    script = HEADER + textwrap.dedent("""
        model = torch.nn.Sequential(torch.nn.EmbeddingBag(100000, 64, mode="sum"),
                                    torch.nn.Linear(64, 1)).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(3):
            idx = torch.randint(0, 100000, (1 << 20,), device="cuda")
            offsets = torch.arange(0, 1 << 20, 256, device="cuda")
            opt.zero_grad()
            model[1](model[0](idx, offsets)).pow(2).mean().backward()
            opt.step()
    """)
    code, report = audit(tmp_path, script)
    assert code == 1 and report["divergence"]["phase"] == "backward"
    code, _ = audit(tmp_path, script, "--deterministic")
    assert code == 0


def test_python_watch_stores_fingerprints_with_the_run(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, torch, lockstep, lockstep.torch
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with lockstep.start(name=sys.argv[1]):
            lockstep.torch.watch(model, steps=2)
            for step in range(3):
                x = torch.ones(2, 4) * (step + float(sys.argv[2]))
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
    """)
    (tmp_path / "watched.py").write_text(script)
    env = clean_env()
    import subprocess

    for name, shift in (("a", "0"), ("b", "0"), ("c", "0.5")):
        subprocess.run(
            [sys.executable, "watched.py", name, shift], cwd=tmp_path, env=env, check=True
        )
    same = lockstep(tmp_path, "diff", "a", "b", "--tensors", "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["diverged"] is False
    other = lockstep(tmp_path, "diff", "a", "c", "--tensors", "--json")
    assert other.returncode == 1
    assert json.loads(other.stdout)["divergence"]["phase"] == "data"

"""Cost of watching every module output, gradient and parameter on every step (CPU).

    python benchmarks/audit.py

For a small and a larger MLP, times training steps in one process in
alternating blocks: unwatched, with the hooks installed but recording nothing
(PyTorch's cost of calling any global module hook), and fully watched. Each
figure is the lowest of the blocks' median step times, so a burst of machine
noise in one block does not decide the result.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch

from lockstep.determinism.watch import Watcher, attach

BLOCKS = 5


def training_step(width: int, depth: int, batch: int) -> Callable[[], None]:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, width), torch.randn(batch, 1)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    return step


def median_step(step: Callable[[], None], steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(width: int, depth: int, batch: int, steps: int) -> dict[str, float]:
    step = training_step(width, depth, batch)
    median_step(step, 10)  # warm-up
    best = {"plain": float("inf"), "hooks": float("inf"), "watched": float("inf")}
    for _ in range(BLOCKS):
        best["plain"] = min(best["plain"], median_step(step, steps))
        idle = attach(Watcher(steps=10**9, every=10**9))
        idle.end_step()  # hooks stay installed; no later step is recorded
        best["hooks"] = min(best["hooks"], median_step(step, steps))
        idle.stop()
        watcher = attach(Watcher(steps=10**9))
        best["watched"] = min(best["watched"], median_step(step, steps))
        watcher.stop()
    return {
        "step_ms": best["plain"] * 1e3,
        "hooks_only_ms": best["hooks"] * 1e3,
        "watched_step_ms": best["watched"] * 1e3,
        "overhead_pct": (best["watched"] / best["plain"] - 1) * 100,
        "hooks_only_pct": (best["hooks"] / best["plain"] - 1) * 100,
    }


def main() -> None:
    torch.set_num_threads(2)
    results = {
        "small MLP (3 x 256, batch 64)": measure(256, 3, 64, steps=200),
        "larger MLP (4 x 2048, batch 512)": measure(2048, 4, 512, steps=8),
    }
    print(json.dumps(results))
    print("\n| model (CPU, 2 threads) | step | hooks alone | watched | overhead | target |")
    print("|---|---|---|---|---|---|")
    for label, row in results.items():
        target = "<= 25%" if label.startswith("small") else "-"
        print(
            f"| {label} | {row['step_ms']:.2f} ms | +{row['hooks_only_pct']:.0f}% | "
            f"{row['watched_step_ms']:.2f} ms | {row['overhead_pct']:.0f}% | {target} |"
        )


if __name__ == "__main__":
    main()

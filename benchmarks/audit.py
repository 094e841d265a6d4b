"""Cost of watching every module output, gradient and parameter on every step (CPU).

    python benchmarks/audit.py

Times training steps with and without the tensor watch, in one process, on a
small MLP and on a larger one, and prints the extra time per step.
"""

from __future__ import annotations

import json
import statistics
import time

import torch


def step_time(width: int, depth: int, batch: int, watch: bool, steps: int = 60) -> float:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, width), torch.randn(batch, 1)
    watcher = None
    if watch:
        from lockstep.determinism.watch import install_global

        watcher = install_global(steps + 10, 1, "/dev/null")
    times = []
    for _ in range(steps + 10):
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - start)
    if watcher is not None:
        watcher.stop()
    return statistics.median(times[10:])


def main() -> None:
    torch.set_num_threads(2)
    results = {}
    for label, width, depth, batch in (
        ("small MLP (3 x 256, batch 64)", 256, 3, 64),
        ("larger MLP (4 x 2048, batch 512)", 2048, 4, 512),
    ):
        plain = step_time(width, depth, batch, watch=False)
        watched = step_time(width, depth, batch, watch=True)
        results[label] = {
            "step_ms": plain * 1e3,
            "watched_step_ms": watched * 1e3,
            "overhead_pct": (watched / plain - 1) * 100,
        }
    print(json.dumps(results))
    print("\n| model (CPU, 2 threads) | step | watched | overhead | target |")
    print("|---|---|---|---|---|")
    for label, row in results.items():
        print(
            f"| {label} | {row['step_ms']:.2f} ms | {row['watched_step_ms']:.2f} ms | "
            f"{row['overhead_pct']:.0f}% | <= 25% (small MLP) |"
        )


if __name__ == "__main__":
    main()

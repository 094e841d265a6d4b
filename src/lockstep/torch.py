"""PyTorch helpers: reproducible DataLoader workers and seeded generators.

Imports torch only when a helper is called.
"""

from __future__ import annotations

import random
import secrets
import sys
from typing import Any

from lockstep.settings import Settings


def worker_init_fn(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs in a DataLoader worker from torch's per-worker seed.

    PyTorch gives each worker ``base_seed + worker_id``; the other RNGs otherwise
    start identical (or random) in every worker. Pass it as
    ``DataLoader(..., worker_init_fn=lockstep.torch.worker_init_fn)``.
    """
    import torch

    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


def generator(seed: int | None = None, device: str = "cpu") -> Any:
    """A ``torch.Generator`` seeded from the run's seed (inside ``lockstep run``) or seed.

    Give it to ``DataLoader(generator=...)`` and ``random_split(generator=...)``
    so shuffles and splits repeat with the run.
    """
    import torch

    if seed is None:
        seed = Settings.from_env().run_seed
    if seed is None:
        seed = secrets.randbelow(2**31 - 1)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def watch(model: Any = None, steps: int = 5, every: int = 1) -> Any:
    """Fingerprint every module output, gradient and parameter for the first steps.

    With a model, its modules are watched (named from the model); without one,
    every top-level module the program calls. A step ends at each optimizer step (or,
    in a loop without a torch.optim optimizer, at each backward pass). When the watch
    ends, or the run ends before the steps are done, the records are stored with the
    active run (section
    ``tensor_fingerprints``), so ``lockstep diff A B --tensors`` can compare two runs.
    """
    from lockstep.determinism.watch import Watcher, attach
    from lockstep.tracking import active

    run = active.current()

    def store(watcher: Watcher) -> None:
        target = run if run is not None and not run.finished else active.current()
        if target is not None:
            target.store_section("tensor_fingerprints", watcher.to_json())

    watcher = attach(Watcher(steps=steps, every=every, model=model, on_stop=store))
    # Fewer steps than asked for (a short run): store what there is when the run ends.
    if run is not None:
        run.before_finish.append(watcher.finish)
    else:
        import atexit

        atexit.register(watcher.finish)
    return watcher

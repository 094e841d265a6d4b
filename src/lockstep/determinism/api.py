"""``lockstep.seed_everything``: the bootstrap's seeding, from Python."""

from __future__ import annotations

import secrets
from typing import Any

from lockstep.determinism import seeding
from lockstep.settings import Settings

MAX_SEED = 2**31 - 1


def seed_everything(seed: int | None = None, deterministic: bool = False) -> dict[str, Any]:
    """Seed ``random``, NumPy, PyTorch (CPU and CUDA) and TensorFlow, now and at import.

    With no seed: inside ``lockstep run`` the run's seed, otherwise a new one
    drawn from the OS (never from the global RNGs). ``deterministic`` also turns
    on the frameworks' deterministic modes. Returns the seed given to each
    library (libraries imported later are added when they are imported) and
    records it on the active run, if any.
    """
    if seed is None:
        seed = Settings.from_env().run_seed
    if seed is None:
        seed = secrets.randbelow(MAX_SEED)
    if not 0 <= seed <= MAX_SEED:
        from lockstep.errors import UsageError

        raise UsageError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    results = seeding.seed_everything(seed, deterministic)
    from lockstep.tracking import active

    run = active.current()
    if run is not None:
        run.log_params({"lockstep.seed": seed, "lockstep.deterministic": deterministic})
    return results

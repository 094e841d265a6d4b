"""Seeded random requests on every MLflow endpoint: each answers or refuses with MLflow's
error codes, never with another exception (which a server would turn into a 500)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from lockstep.errors import LockstepError
from lockstep.mlflow.service import _ROUTES, MlflowService
from lockstep.settings import Settings
from lockstep.workspace import Workspace

FIELDS = (
    "experiment_id",
    "experiment_ids",
    "experiment_name",
    "name",
    "new_name",
    "run_id",
    "run_uuid",
    "run_ids",
    "key",
    "value",
    "timestamp",
    "step",
    "metrics",
    "params",
    "tags",
    "filter",
    "order_by",
    "max_results",
    "page_token",
    "run_view_type",
    "view_type",
    "status",
    "end_time",
    "start_time",
    "run_name",
    "metric_key",
    "path",
    "datasets",
    "models",
    "model_id",
    "tag_key",
    "source",
    "version",
    "alias",
    "stage",
    "description",
    "model_json",
    "start_step",
    "end_step",
)


def hostile(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12 if depth < 2 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**63, -(2**70), 10**30, 7])
    if choice == 3:
        return rng.choice([float("nan"), float("inf"), 1e308, -0.0, 0.5])
    if choice == 4:
        return rng.choice(["", "0", "1", "../../etc/passwd", "a" * 10_000, "\x00", "`", "'"])
    if choice == 5:
        return rng.choice(
            ["metrics.a > 1 or x", "params.`", "tags.x LIKE", "attributes.run_id IN ()"]
        )
    if choice == 6:
        return rng.choice(["m-" + "0" * 32, "0" * 26, "Default", "champion", "NaN"])
    if choice == 7:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 20)))
    if choice in (8, 9):
        return [hostile(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {
        rng.choice(["key", "value", "timestamp", "step", "dataset", "name", "digest"]): hostile(
            rng, depth + 1
        )
        for _ in range(rng.randrange(0, 4))
    }


@pytest.fixture
def service(tmp_path: Path) -> MlflowService:
    workspace = Workspace.open(Settings(cwd=tmp_path, home=tmp_path / ".lockstep"))
    made = MlflowService(workspace)
    made.handle("POST", "experiments/create", {"name": "exp"})
    return made


@pytest.mark.parametrize("seed", [16, 17, 18, 19])
def test_random_bodies_never_escape_as_other_errors(service: MlflowService, seed: int) -> None:
    rng = random.Random(seed)
    run = service.handle("POST", "runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
    refused = 0
    for method, pattern in sorted(_ROUTES):
        for _ in range(150):
            body = {f: hostile(rng) for f in rng.sample(FIELDS, rng.randrange(0, 8))}
            if rng.random() < 0.3:
                body["run_id"] = run
            path = pattern.replace("{model_id}", str(hostile(rng))).replace(
                "{tag_key}", str(hostile(rng))
            )
            try:
                answer = service.handle(method, path, body)
            except LockstepError:
                refused += 1
                continue
            assert isinstance(answer, dict)
    assert refused > 0  # the bodies were hostile enough to be refused
    # The store is still whole: the run answers.
    assert service.handle("GET", "runs/get", {"run_id": run})["run"]["info"]["run_id"] == run

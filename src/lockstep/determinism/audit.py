"""``lockstep audit``: run a command twice with the same seed under the tensor watch and
name the first tensor where the runs diverge."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from lockstep.determinism.divergence import Divergence, first_divergence
from lockstep.errors import UsageError
from lockstep.settings import Settings


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    runs: tuple[str, str]
    steps_watched: int
    divergence: Divergence | None

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": list(self.runs),
            "steps_watched": self.steps_watched,
            "diverged": self.divergence is not None,
            "divergence": None if self.divergence is None else self.divergence.to_json(),
        }


def audit(
    settings: Settings,
    argv: tuple[str, ...],
    *,
    steps: int,
    every: int,
    device: str,
    deterministic: bool,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> AuditResult:
    from lockstep.tracking.launcher import LaunchRequest, launch
    from lockstep.workspace import Workspace

    if steps < 1:
        raise UsageError("--steps must be at least 1")
    seed = secrets.randbelow(2**31 - 1)
    extra = {"LOCKSTEP_WATCH_STEPS": str(steps), "LOCKSTEP_WATCH_EVERY": str(every)}
    if device == "cpu":
        extra["CUDA_VISIBLE_DEVICES"] = ""
    ids = []
    for attempt in ("a", "b"):
        request = LaunchRequest(
            argv=argv,
            seed=seed,
            deterministic=deterministic,
            experiment="audit",
            tags={"audit": attempt},
            extra_env=extra,
        )
        ids.append(launch(settings, request, environ=environ, stdout=stdout, stderr=stderr).run_id)
    workspace = Workspace.open(settings)
    first, second = (workspace.meta.get_run(i) for i in ids)
    workspace.close()
    section_a = first.sections.get("tensor_fingerprints")
    section_b = second.sections.get("tensor_fingerprints")
    if not section_a or not section_b:
        raise UsageError(
            "the command recorded no tensors: audit needs a Python command that imports torch, "
            "with lockstep importable in its interpreter, and at least one optimizer step"
        )
    divergence = first_divergence(section_a, section_b, first.sections.get("determinism"))
    return AuditResult(
        runs=(first.id, second.id), steps_watched=len(section_a["steps"]), divergence=divergence
    )

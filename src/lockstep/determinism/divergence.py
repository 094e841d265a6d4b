"""Find where two watched runs first diverge, and say what probably caused it.

Both runs record the same tensors in the same order while they agree, so the
first record whose fingerprint differs is the first divergence. A module output
that differs while its input matched is where the difference starts; an input
that differs while everything recorded before it matched was changed by
unwatched code in between (functional ops, random noise in a parent's forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Divergence:
    step: int
    phase: str  # data / forward / backward / update, or "structure"
    name: str
    origin: bool  # True: its inputs matched, so it starts here
    detail: str
    causes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "phase": self.phase,
            "name": self.name,
            "origin": self.origin,
            "detail": self.detail,
            "causes": self.causes,
        }


def first_divergence(
    a: dict[str, Any], b: dict[str, Any], determinism: dict[str, Any] | None = None
) -> Divergence | None:
    """The first differing record of two fingerprint sections, or None when they agree."""
    if a.get("algorithm") != b.get("algorithm"):
        return Divergence(
            step=0,
            phase="structure",
            name="(fingerprints)",
            origin=True,
            detail="the runs' tensors were fingerprinted by different versions of lockstep "
            f"({a.get('algorithm') or 'unnamed'} / {b.get('algorithm') or 'unnamed'}): "
            "record both again with this version",
        )
    steps_a, steps_b = a.get("steps", []), b.get("steps", [])
    every = int(a.get("every", 1))
    for index, (records_a, records_b) in enumerate(zip(steps_a, steps_b, strict=False)):
        step = index * every
        seen: dict[str, bool] = {}  # record name -> matched
        for position, (ra, rb) in enumerate(zip(records_a, records_b, strict=False)):
            phase, name, value = ra
            if (ra[0], ra[1]) != (rb[0], rb[1]):
                return Divergence(
                    step=step,
                    phase="structure",
                    name=f"{name} / {rb[1]}",
                    origin=True,
                    detail=f"the runs executed different modules at "
                    f"record {position} of step {step}: {name} against {rb[1]}",
                    causes=[
                        "data-dependent control flow or a different code path between the two runs"
                    ],
                )
            if "?" in (value, rb[2]):
                continue  # a tensor one run could not fingerprint: no evidence either way
            matched = value == rb[2]
            seen[name] = matched
            if matched:
                continue
            return _describe(step, phase, name, seen, a, determinism or {})
        if len(records_a) != len(records_b):
            return Divergence(
                step=step,
                phase="structure",
                name="(end of step)",
                origin=True,
                detail=f"step {step} recorded {len(records_a)} tensors in one "
                f"run and {len(records_b)} in the other",
            )
    if len(steps_a) != len(steps_b):
        return Divergence(
            step=min(len(steps_a), len(steps_b)) * every,
            phase="structure",
            name="(steps)",
            origin=True,
            detail=f"{len(steps_a)} steps watched in one run, {len(steps_b)} in the other",
        )
    return None


def _describe(
    step: int,
    phase: str,
    name: str,
    seen: dict[str, bool],
    section: dict[str, Any],
    determinism: dict[str, Any],
) -> Divergence:
    kinds = section.get("nondeterministic_modules", {})
    causes: list[str] = []
    torch_state = determinism.get("torch", {}) if isinstance(determinism, dict) else {}
    on_gpu = bool(torch_state.get("cuda_available"))
    if phase == "data":
        return Divergence(
            step=step,
            phase=phase,
            name="data batch",
            origin=True,
            detail="the batch fed to the model differs: the data order or augmentation is not "
            "derived from the run seed",
            causes=[
                "a DataLoader shuffling with a generator seeded from the clock (or another "
                "source than the run seed): pass generator=lockstep.torch.generator()",
                "DataLoader workers without a seeded worker_init_fn: pass "
                "worker_init_fn=lockstep.torch.worker_init_fn",
            ],
        )
    module = name.removesuffix(":input")
    if phase == "forward" and name.endswith(":input"):
        origin, detail = (
            False,
            (
                f"the input of {module} differs although every watched tensor before it matched: "
                "code between modules (a functional op, noise drawn in a parent's forward) "
                "changed it"
            ),
        )
        causes.append(
            "random numbers drawn from a generator that is not seeded by the run "
            "(seeded from the clock, or a new torch.Generator()): derive it from the "
            "run seed, e.g. lockstep.torch.generator()"
        )
    elif phase == "forward":
        inputs_matched = seen.get(f"{module}:input", True)
        origin = inputs_matched
        detail = (
            f"{module}'s output differs while its input matched: this module is where the runs part"
            if inputs_matched
            else f"{module}'s input already differed"
        )
        if module in kinds and on_gpu:
            causes.append(
                f"{kinds[module]}: set torch.use_deterministic_algorithms(True) "
                "(lockstep run --deterministic)"
            )
        causes.append(
            f"{module} draws random numbers from a generator not derived from the "
            "run seed (e.g. seeded from the clock); use lockstep.torch.generator()"
        )
    elif phase == "backward":
        origin, detail = (
            True,
            (
                f"the forward pass matched but the gradient {name} differs: the difference arises "
                "in the backward pass"
            ),
        )
        owner = name.rsplit(".", 2)[0]
        if owner in kinds and on_gpu:
            causes.append(f"{kinds[owner]}: use torch.use_deterministic_algorithms(True)")
        causes.append(
            "a backward kernel that accumulates with atomics (index_add, scatter_add, "
            "embedding_bag, interpolate) or a custom autograd Function whose backward "
            "draws unseeded random numbers"
        )
    else:
        origin, detail = (
            True,
            (
                f"gradients matched but {name} differs after the optimizer "
                "step: the update itself is not deterministic"
            ),
        )
        causes.append(
            "a fused or foreach optimizer kernel, or an optimizer drawing random "
            "numbers (noise injection) outside the run seed"
        )
    if on_gpu:
        if torch_state.get("cudnn_benchmark"):
            causes.append("cuDNN benchmark mode is on: torch.backends.cudnn.benchmark = False")
        if not torch_state.get("deterministic_algorithms"):
            causes.append("deterministic algorithms are off: lockstep run --deterministic")
        if torch_state.get("cuda_matmul_allow_tf32") or torch_state.get("cudnn_allow_tf32"):
            causes.append("TF32 is allowed (reduced-precision matmuls/convolutions)")
        env = determinism.get("env", {})
        if not env.get("CUBLAS_WORKSPACE_CONFIG"):
            causes.append(
                "CUBLAS_WORKSPACE_CONFIG is unset (cuBLAS reductions may vary): set it to :4096:8"
            )
    return Divergence(
        step=step,
        phase=phase,
        name=module if phase == "forward" else name,
        origin=origin,
        detail=detail,
        causes=causes,
    )

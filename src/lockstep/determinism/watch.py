"""Watch a PyTorch training run: fingerprints of every module's output, every gradient and
every parameter after each optimizer step, for the first N steps, with no code changes.

Records per step, in execution order: the batch fed to the top module (phase
``data``), each module's input and output (``forward``), each parameter's
gradient as it is accumulated (``backward``), and each parameter after the
optimizer step (``update``). Fingerprints stay on the device until the step
ends, then are copied to the host together.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lockstep.determinism.fingerprint import fingerprint, to_hex


def _first_tensor(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        for item in value.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


class Watcher:
    """Collects fingerprint records step by step; see the module docstring."""

    def __init__(self, steps: int, every: int = 1, model: Any = None, on_stop: Any = None) -> None:
        self.steps = steps
        self.every = max(1, every)
        self.step = 0
        self.records: list[list[list[str]]] = []  # per recorded step: [phase, name, hex]
        self._pending: list[tuple[str, str, Any]] = []
        self._seen: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self._names: dict[int, str] = {}
        self._roots: set[int] = set()
        self._hooked_params: set[int] = set()
        self._param_qualified: dict[int, str] = {}
        self._handles: list[Any] = []
        self._active = True
        self._depth = 0
        self.nondeterministic_modules: dict[str, str] = {}
        self._on_stop = on_stop
        # Without a model, any top-level module called becomes a root to watch.
        self._adopt_new = model is None
        if model is not None:
            self._adopt(model, type(model).__name__)

    @property
    def recording(self) -> bool:
        return self._active and self.step % self.every == 0

    def _adopt(self, root: Any, prefix: str) -> None:
        """Name every submodule of a top-level module and hook its parameters' gradients."""
        self._roots.add(id(root))
        for name, module in root.named_modules():
            qualified = ".".join(p for p in (prefix, name) if p)
            self._names.setdefault(id(module), qualified or type(root).__name__)
            kind = type(module).__name__
            if kind in _KNOWN_NONDETERMINISTIC:
                self.nondeterministic_modules[self._names[id(module)]] = kind
        for name, param in root.named_parameters():
            if id(param) in self._hooked_params:
                continue
            self._hooked_params.add(id(param))
            qualified = ".".join(p for p in (prefix, name) if p)
            self._param_qualified[id(param)] = qualified
            self._handles.append(
                param.register_post_accumulate_grad_hook(
                    lambda p, qualified=qualified: self._add(
                        "backward", f"{qualified}.grad", p.grad
                    )
                )
            )

    def _add(self, phase: str, name: str, tensor: Any) -> None:
        if tensor is None or not self.recording:
            return
        # A module's input is usually the previous module's output: fingerprint a
        # tensor once per step (same storage, same version, same shape).
        # The entry keeps the tensor alive until the step ends, so its memory cannot be
        # reused by another tensor that would then match this key.
        key = (tensor.data_ptr(), tensor._version, tuple(tensor.shape), tensor.dtype)
        entry = self._seen.get(key)
        if entry is None:
            entry = self._seen[key] = (tensor, fingerprint(tensor))
        self._pending.append((phase, name, entry[1]))

    # hooks -----------------------------------------------------------------

    def before_forward(self, module: Any, args: Any) -> None:
        if not self._active:
            return
        if id(module) not in self._names and self._depth == 0 and self._adopt_new:
            self._adopt(module, type(module).__name__)
        self._depth += 1
        name = self._names.get(id(module))
        if name is None:
            return
        tensor = _first_tensor(args)
        if id(module) in self._roots and self._depth == 1:
            self._add("data", "batch", tensor)
        self._add("forward", f"{name}:input", tensor)

    def after_forward(self, module: Any, args: Any, output: Any) -> None:
        if not self._active:
            return
        self._depth = max(0, self._depth - 1)
        name = self._names.get(id(module))
        if name is not None:
            self._add("forward", name, _first_tensor(output))

    def after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._active:
            return
        for group in optimizer.param_groups:
            for param in group["params"]:
                name = self._param_name(param)
                self._add("update", name, param)
        self.end_step()

    def _param_name(self, param: Any) -> str:
        return self._param_qualified.get(id(param), f"param@{id(param):x}")

    def end_step(self) -> None:
        """Copy this step's fingerprints to the host at once and start the next step."""
        if self._pending:
            import torch

            stacked = torch.stack([fp for _, _, fp in self._pending]).cpu().tolist()
            self.records.append(
                [
                    [phase, name, to_hex(pair)]
                    for (phase, name, _), pair in zip(self._pending, stacked, strict=True)
                ]
            )
            self._pending = []
        self._seen.clear()
        self.step += 1
        if self.step >= self.steps * self.every:
            self.stop()

    def stop(self) -> None:
        if not self._active:
            return
        self._active = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._on_stop is not None:
            self._on_stop(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.records,
            "every": self.every,
            "nondeterministic_modules": self.nondeterministic_modules,
        }


# Module types with nondeterministic CUDA kernels (backward through atomics, or
# algorithm choice); named in audit reports when they sit where a run diverges.
_KNOWN_NONDETERMINISTIC = {
    "EmbeddingBag": "embedding_bag backward uses atomic adds on CUDA",
    "Embedding": "embedding backward uses atomic adds on CUDA (index_add)",
    "Conv1d": "cuDNN may pick a nondeterministic convolution backward (benchmark mode)",
    "Conv2d": "cuDNN may pick a nondeterministic convolution backward (benchmark mode)",
    "Conv3d": "cuDNN may pick a nondeterministic convolution backward (benchmark mode)",
    "ConvTranspose2d": "cuDNN may pick a nondeterministic convolution backward",
    "Upsample": "interpolate backward uses atomic adds on CUDA",
    "CTCLoss": "ctc_loss backward is nondeterministic on CUDA",
    "NLLLoss": "nll_loss2d forward is nondeterministic on CUDA",
}


def attach(watcher: Watcher) -> Watcher:
    """Hook a watcher into every module call and every optimizer step of the process."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    module_hooks = torch.nn.modules.module
    watcher._handles.append(module_hooks.register_module_forward_pre_hook(watcher.before_forward))
    watcher._handles.append(module_hooks.register_module_forward_hook(watcher.after_forward))
    watcher._handles.append(register_optimizer_step_post_hook(watcher.after_optimizer_step))

    return watcher


def install_global(steps: int, every: int, output_path: str) -> Watcher:
    """Watch every module and optimizer of the process (zero code changes); write the
    records to output_path at exit."""
    import atexit

    watcher = attach(Watcher(steps=steps, every=every))

    def write() -> None:
        if watcher._pending:
            watcher.end_step()
        tmp = output_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(watcher.to_json(), handle)
        os.replace(tmp, output_path)

    atexit.register(write)
    return watcher

"""Watch a PyTorch training run: fingerprints of every module's output, every gradient and
every parameter after each optimizer step, for the first N steps, with no code changes.

Records per step, in execution order: the batch fed to the top module (phase
``data``), each module's input and output (``forward``), each parameter's
gradient (``backward``), and each parameter after the optimizer step
(``update``). Fingerprints stay on the device until the step ends, then are
copied to the host together.

A parameter's gradient is first read by a hook on that parameter as backward
accumulates it, which also teaches the order backward produces gradients in. A
hook costs several microseconds a call, so once a step has ended the hook is
removed, and later steps read the finished gradients of the parameters the
stepping optimizer holds all at once, in the learned order, just before the
optimizer step. (Gradients only some steps compute, as with a GAN's two
optimizers, are learned in the first step that computes them.)
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import Tensor

from lockstep.determinism.fingerprint import ALGORITHM, fingerprint, to_hex


def _first_tensor(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], Tensor):  # the usual case, without recursion
            return value[0]
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
        self._recorded: list[tuple[list[tuple[str, str]], list[Any]]] = []  # per recorded step
        self._pending: list[tuple[str, str, Any]] = []
        self._seen: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self._names: dict[int, str] = {}
        self._input_names: dict[int, str] = {}
        self._roots: set[int] = set()
        self._hooked_params: set[int] = set()
        self._param_qualified: dict[int, str] = {}
        self._params: dict[int, Any] = {}
        self._handles: list[Any] = []
        self._grad_hooks: dict[int, Any] = {}  # parameter id -> hook, until learned
        self._grad_order: list[tuple[Any, str]] = []  # (parameter, gradient name), learned
        self._learning: dict[int, tuple[Any, str]] = {}  # first seen in this step
        self._root_names: dict[str, int] = {}
        self._optimizer_params: dict[int, tuple[int, set[int]]] = {}
        self._active = True
        # Whether this step is fingerprinted (every K-th step, while active); kept as a
        # plain attribute because every hook reads it.
        self.recording = True
        self.failures = 0  # tensors that could not be fingerprinted (recorded as "?")
        self._depth = 0
        self.nondeterministic_modules: dict[str, str] = {}
        self._on_stop = on_stop
        # A step ends at an optimizer step; in a loop without a torch.optim optimizer (a
        # hand-written update), at the first top-level forward after a backward pass.
        self._optimizer_seen = False
        self._backward_pending = False
        # Without a model, any top-level module called becomes a root to watch.
        self._adopt_new = model is None
        if model is not None:
            self._adopt(model)

    def _adopt(self, root: Any) -> None:
        """Name every submodule of a top-level module and hook its parameters' gradients."""
        self._roots.add(id(root))
        # Top-level modules are named by type, numbered from the second of a type on, in
        # the order the program first calls them (the same in both runs).
        prefix = type(root).__name__
        count = self._root_names[prefix] = self._root_names.get(prefix, 0) + 1
        if count > 1:
            prefix = f"{prefix}#{count}"
        for name, module in root.named_modules():
            qualified = ".".join(p for p in (prefix, name) if p)
            self._names.setdefault(id(module), qualified)
            self._input_names[id(module)] = self._names[id(module)] + ":input"
            kind = type(module).__name__
            if kind in _KNOWN_NONDETERMINISTIC:
                self.nondeterministic_modules[self._names[id(module)]] = kind
        for name, param in root.named_parameters():
            if id(param) in self._hooked_params:
                continue
            self._hooked_params.add(id(param))
            qualified = ".".join(p for p in (prefix, name) if p)
            self._param_qualified[id(param)] = qualified
            self._params[id(param)] = param
            grad_name = f"{qualified}.grad"
            self._grad_hooks[id(param)] = param.register_post_accumulate_grad_hook(
                lambda p, grad_name=grad_name: self._on_gradient(p, grad_name)
            )

    def _on_gradient(self, param: Any, grad_name: str) -> None:
        """Until a step has seen it: record a gradient as backward accumulates it, and
        learn its place in backward's order."""
        self._learning.setdefault(id(param), (param, grad_name))
        self._add("backward", grad_name, param.grad)

    def _add(self, phase: str, name: str, tensor: Any) -> None:
        if tensor is None or not self.recording:
            return
        # A module's input is usually the previous module's output: fingerprint a
        # tensor once per step (same storage, same version, same shape).
        # The entry keeps the tensor alive until the step ends, so its memory cannot be
        # reused by another tensor that would then match this key.
        try:
            key = (tensor.data_ptr(), tensor._version, tensor.shape, tensor.dtype)
            entry = self._seen.get(key)
            if entry is None:
                entry = self._seen[key] = (tensor, fingerprint(tensor))
            value = entry[1]
        except Exception:
            # A tensor the fingerprint cannot read (no storage, as a sparse tensor; an
            # exotic subclass) must not break the training it watches: recorded as "?".
            value = None
            self.failures += 1
        self._pending.append((phase, name, value))

    # hooks -----------------------------------------------------------------

    def before_forward(self, module: Any, args: Any) -> None:
        # Inside a graph torch.compile is tracing, a hook must be invisible: tracing the
        # fingerprint would break the graph there and change the compiled numerics.
        if _compiling() or not self._active:
            return
        if self._depth == 0 and self._backward_pending and not self._optimizer_seen:
            self._end_manual_step()
        if id(module) not in self._names and self._depth == 0 and self._adopt_new:
            self._adopt(module)
        self._depth += 1
        name = self._names.get(id(module))
        if name is None:
            return
        tensor = args[0] if args and type(args[0]) is Tensor else _first_tensor(args)
        if self._depth == 1 and id(module) in self._roots:
            self._add("data", "batch", tensor)
        self._add("forward", self._input_names[id(module)], tensor)

    def after_forward(self, module: Any, args: Any, output: Any) -> None:
        if _compiling() or not self._active:
            return
        if self._depth:
            self._depth -= 1
        name = self._names.get(id(module))
        if name is not None:
            self._add("forward", name, output if type(output) is Tensor else _first_tensor(output))

    def before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """After the first step: this optimizer's finished gradients, in backward's order."""
        self._optimizer_seen = True
        self._backward_pending = False
        if not self.recording or not self._grad_order:
            return
        groups = optimizer.param_groups
        cached = self._optimizer_params.get(id(optimizer))
        if cached is None or cached[0] != len(groups):
            ids = {id(param) for group in groups for param in group["params"]}
            cached = self._optimizer_params[id(optimizer)] = (len(groups), ids)
        for param, grad_name in self._grad_order:
            if id(param) in cached[1]:
                self._add("backward", grad_name, param.grad)

    def after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._active:
            return
        for group in optimizer.param_groups:
            for param in group["params"]:
                name = self._param_name(param)
                self._add("update", name, param)
        self.end_step()

    def after_backward(self) -> None:
        """A backward pass ended. Without an optimizer, read its gradients now (learned
        ones; the first step's hooks already recorded theirs) and end the step at the next
        top-level forward, once the hand-written update has run."""
        if not self._active or self._optimizer_seen:
            return
        self._backward_pending = True
        if self.recording:
            for param, grad_name in self._grad_order:
                self._add("backward", grad_name, param.grad)

    def _end_manual_step(self) -> None:
        self._backward_pending = False
        if self.recording:
            for param_id, name in self._param_qualified.items():
                param = self._params.get(param_id)
                if param is not None:
                    self._add("update", name, param)
        self.end_step()

    def finish(self) -> None:
        """The program ends: close a step still open, then stop."""
        if self._active and self._backward_pending and not self._optimizer_seen:
            self._end_manual_step()
        if self._active and self._pending:
            self.end_step()
        self.stop()

    def _param_name(self, param: Any) -> str:
        return self._param_qualified.get(id(param), f"param@{id(param):x}")

    def end_step(self) -> None:
        """Copy this step's fingerprints to the host at once and start the next step."""
        if self._pending:
            values = [fp for _, _, fp in self._pending]
            on_device = [i for i, fp in enumerate(values) if not isinstance(fp, (int, type(None)))]
            if on_device:
                copied = torch.stack([values[i] for i in on_device]).cpu().tolist()
                for i, value in zip(on_device, copied, strict=True):
                    values[i] = value
            # Formatted in to_json, after the watched steps, not inside them.
            self._recorded.append(([(phase, name) for phase, name, _ in self._pending], values))
            self._pending = []
        self._seen.clear()
        for key, learned in self._learning.items():
            self._grad_order.append(learned)
            self._grad_hooks.pop(key).remove()
        self._learning.clear()
        self.step += 1
        self.recording = self.step % self.every == 0
        if self.step >= self.steps * self.every:
            self.stop()

    def stop(self) -> None:
        if not self._active:
            return
        self._active = self.recording = False
        self._remove(self._handles)
        self._remove(list(self._grad_hooks.values()))
        self._grad_hooks.clear()
        self._grad_order.clear()
        self._learning.clear()
        if self in _BACKWARD_WATCHERS:
            _BACKWARD_WATCHERS.remove(self)
        if self._on_stop is not None:
            self._on_stop(self)

    @staticmethod
    def _remove(handles: list[Any]) -> None:
        for handle in handles:
            handle.remove()
        handles.clear()

    def records(self) -> list[list[list[str]]]:
        """Per recorded step, its [phase, name, fingerprint hex] records in execution order."""
        return [
            [
                [phase, name, "?" if value is None else to_hex(value)]
                for (phase, name), value in zip(names, values, strict=True)
            ]
            for names, values in self._recorded
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "steps": self.records(),
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


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


_BACKWARD_WATCHERS: list[Watcher] = []


def _watch_backward() -> None:
    """Wrap torch.autograd.backward once (Tensor.backward goes through it), so that a loop
    without an optimizer still has steps."""
    original = torch.autograd.backward
    if getattr(original, "_lockstep_watch", False):
        return

    def backward(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not _compiling():
            for watcher in list(_BACKWARD_WATCHERS):
                watcher.after_backward()
        return result

    backward._lockstep_watch = True  # type: ignore[attr-defined]
    backward.__wrapped__ = original  # type: ignore[attr-defined]
    backward.__doc__ = original.__doc__
    torch.autograd.backward = backward


def attach(watcher: Watcher) -> Watcher:
    """Hook a watcher into every module call and every optimizer step of the process."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    module_hooks = torch.nn.modules.module
    watcher._handles.append(module_hooks.register_module_forward_pre_hook(watcher.before_forward))
    watcher._handles.append(module_hooks.register_module_forward_hook(watcher.after_forward))
    watcher._handles.append(register_optimizer_step_pre_hook(watcher.before_optimizer_step))
    watcher._handles.append(register_optimizer_step_post_hook(watcher.after_optimizer_step))
    _watch_backward()
    _BACKWARD_WATCHERS.append(watcher)
    return watcher


def install_global(steps: int, every: int, output_path: str) -> Watcher:
    """Watch every module and optimizer of the process (zero code changes); write the
    records to output_path at exit."""
    import atexit

    watcher = attach(Watcher(steps=steps, every=every))

    def write() -> None:
        watcher.finish()
        tmp = output_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(watcher.to_json(), handle)
        os.replace(tmp, output_path)

    atexit.register(write)
    return watcher

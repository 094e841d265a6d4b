"""Exact, cheap fingerprints of a tensor's bits, computed where the tensor lives.

The bytes are read as integers and reduced with integer arithmetic (wrapping
64-bit sums are associative, so the fingerprint is itself deterministic on any
device), once plainly and once weighted by position so that swapped elements
change it. Nothing is copied to the host here: callers gather fingerprints on
the device and copy them once per step.
"""

from __future__ import annotations

from typing import Any

_GOLDEN = 0x9E3779B1  # an odd 32-bit multiplier: the weights are distinct modulo 2**32

_weights: dict[str, Any] = {}


def _as_integers(tensor: Any) -> Any:
    """The tensor's bits as a flat integer tensor, without copying where the layout allows."""
    import torch

    flat = tensor.detach().reshape(-1)
    size = flat.element_size()
    if flat.dtype.is_floating_point or flat.dtype.is_complex:
        flat = flat.contiguous().view(
            {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
        )
    elif flat.dtype == torch.bool:
        flat = flat.view(torch.int8)
    return flat


def _position_weights(n: int, device: Any) -> Any:
    """Odd position weights 1, 1+g, 1+2g, ... (int32, wrapping), grown and cached per device."""
    import torch

    key = str(device)
    weights = _weights.get(key)
    if weights is None or weights.numel() < n:
        size = max(n, 1 << 16, 0 if weights is None else weights.numel() * 2)
        ramp = torch.arange(size, dtype=torch.int64, device=device) * _GOLDEN * 2 + 1
        weights = ((ramp + (1 << 31)) % (1 << 32) - (1 << 31)).to(torch.int32)
        _weights[key] = weights
    return weights[:n]


def fingerprint(tensor: Any) -> Any:
    """A 0-d int64 tensor on the tensor's device: the position-weighted sum of its bits.

    Three operations per tensor (a view, a multiply that wraps, a sum), so the
    cost is one pass over the data; odd weights make any single-bit change and
    any swap of unequal elements change the sum.
    """
    import torch

    values = _as_integers(tensor)
    weights = _position_weights(values.numel(), values.device)
    if values.dtype != torch.int32:
        weights = weights.to(values.dtype) if values.dtype == torch.int64 else weights
        values = values.to(torch.int32) if values.dtype != torch.int64 else values
    return (values * weights).sum(dtype=torch.int64)


def to_hex(value: Any) -> str:
    """A host-side fingerprint as 16 hex digits."""
    return f"{int(value) & ((1 << 64) - 1):016x}"

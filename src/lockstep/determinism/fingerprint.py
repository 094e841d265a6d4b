"""Exact, cheap fingerprints of a tensor's bits, computed where the tensor lives.

On an accelerator the bytes are read as integers and reduced with integer
arithmetic weighted by position (wrapping 64-bit sums are associative, so the
fingerprint is itself deterministic on any device, and swapped elements change
it). Nothing is copied to the host there: callers gather fingerprints on the
device and copy them once per step.

A tensor in host memory needs no reduction on a device: its bytes are hashed
where they lie with XXH3-64, one C call at memory speed. PyTorch's per-operation
dispatch (tens of microseconds on a small CPU) made the two-operation reduction
cost more than the training step of a small model; the hash costs a few
microseconds per tensor.

Imported only once the program has imported torch.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
import xxhash

_GOLDEN = 0x9E3779B1  # an odd 32-bit multiplier: the weights are distinct modulo 2**32

# Stored with every fingerprint section: streams are comparable only under the same scheme.
ALGORITHM = "xxh3-64 on host memory, position-weighted int64 sum on devices"

_weights: dict[str, Any] = {}


def _as_integers(tensor: Any) -> Any:
    """The tensor's bits as a flat integer tensor, without copying where the layout allows."""
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
    key = str(device)
    weights = _weights.get(key)
    if weights is None or weights.numel() < n:
        size = max(n, 1 << 16, 0 if weights is None else weights.numel() * 2)
        ramp = torch.arange(size, dtype=torch.int64, device=device) * _GOLDEN * 2 + 1
        weights = ((ramp + (1 << 31)) % (1 << 32) - (1 << 31)).to(torch.int32)
        _weights[key] = weights
    return weights[:n]


def fingerprint(tensor: Any) -> Any:
    """The tensor's fingerprint: an int (XXH3-64 of its bytes in memory order) for a
    dense tensor in host memory, else a 0-d int64 tensor on its device (see
    device_fingerprint).

    A contiguous host tensor is hashed in place, read through its data pointer:
    no tensor operation at all, because each costs microseconds of dispatch and
    the hooks call this for every module output, gradient and parameter. Any
    other host layout is copied to a contiguous buffer first.
    """
    if not tensor.is_cpu or tensor.is_quantized or tensor.layout is not torch.strided:
        return device_fingerprint(tensor)
    if not tensor.is_contiguous():
        flat = tensor.detach().reshape(-1)  # a contiguous copy
        return xxhash.xxh3_64_intdigest(flat.view(torch.uint8).numpy())
    size = tensor.nbytes
    if size == 0:
        return xxhash.xxh3_64_intdigest(b"")
    # The caller holds the tensor, so its memory stays valid during the call.
    return xxhash.xxh3_64_intdigest((ctypes.c_char * size).from_address(tensor.data_ptr()))


def device_fingerprint(tensor: Any) -> Any:
    """A 0-d int64 tensor on the tensor's device: the position-weighted sum of its bits.

    Three operations per tensor (a view, a multiply that wraps, a sum), so the
    cost is one pass over the data; odd weights make any single-bit change and
    any swap of unequal elements change the sum.
    """
    values = _as_integers(tensor)
    weights = _position_weights(values.numel(), values.device)
    if values.dtype != torch.int32:
        weights = weights.to(values.dtype) if values.dtype == torch.int64 else weights
        values = values.to(torch.int32) if values.dtype != torch.int64 else values
    return (values * weights).sum(dtype=torch.int64)


def to_hex(value: Any) -> str:
    """A host-side fingerprint (an int or a 0-d tensor's value) as 16 hex digits."""
    return f"{int(value) & ((1 << 64) - 1):016x}"

"""Read numeric files into named arrays, so outputs that differ in bytes can be compared
element by element: .npy, .npz, .pt/.pth state dicts, .safetensors, .csv and JSON.

Each reader returns ``(arrays, exact)``: the numbers as float64 arrays by name,
and whatever is not a number, which must match exactly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

Numeric = tuple[dict[str, Any], Any]


def _npy(data: bytes) -> Numeric:
    return {"array": np.load(io.BytesIO(data), allow_pickle=False)}, None


def _npz(data: bytes) -> Numeric:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}, None


def _torch(data: bytes) -> Numeric:
    import torch

    loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    arrays: dict[str, Any] = {}
    exact: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            arrays[prefix] = value.detach().to(torch.float64).numpy()
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            arrays[prefix] = np.asarray(value, dtype=np.float64)
        else:
            exact[prefix] = repr(value)

    walk("", loaded)
    return arrays, exact


def _safetensors(data: bytes) -> Numeric:
    from safetensors.numpy import load

    return dict(load(data)), None


def _csv(data: bytes) -> Numeric:
    numbers: list[float] = []
    text: list[str] = []
    for row in csv.reader(io.StringIO(data.decode("utf-8"))):
        for cell in row:
            try:
                numbers.append(float(cell))
                text.append("<number>")
            except ValueError:
                text.append(cell)
    return {"cells": np.asarray(numbers, dtype=np.float64)}, text


def _json(data: bytes) -> Numeric:
    arrays: dict[str, Any] = {}

    def strip(prefix: str, value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            arrays[prefix] = np.asarray(value, dtype=np.float64)
            return "<number>"
        if isinstance(value, list):
            return [strip(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
        return {k: strip(f"{prefix}.{k}" if prefix else k, v) for k, v in value.items()}

    shape = strip("", json.loads(data))
    return arrays, shape


READERS: dict[str, Callable[[bytes], Numeric]] = {
    ".npy": _npy,
    ".npz": _npz,
    ".pt": _torch,
    ".pth": _torch,
    ".safetensors": _safetensors,
    ".csv": _csv,
    ".json": _json,
}


def read_numeric(suffix: str, data: bytes) -> Numeric | None:
    """Named arrays and the exact remainder, or None when the format is not numeric."""
    reader = READERS.get(suffix.lower())
    if reader is None:
        return None
    return reader(data)

"""Parameters: nested mappings flattened to dotted keys, each value keeping its type."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockstep.errors import UsageError

ParamValue = str | int | float | bool | None | list[Any]


@dataclass(frozen=True, kw_only=True)
class EncodedParam:
    """A parameter as stored: its JSON text, its type name and, for numbers, its value."""

    key: str
    value_json: str
    value_type: str
    value_num: float | None


MAX_DEPTH = 64


def flatten(params: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """``{"opt": {"lr": 0.1}}`` -> ``{"opt.lr": 0.1}``; lists and scalars are leaves."""
    if depth > MAX_DEPTH:
        raise UsageError(f"parameters nest more than {MAX_DEPTH} levels deep (at {prefix!r})")
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"parameter keys must be non-empty strings, got {key!r}")
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not value:
                flat[full] = {}
            flat.update(flatten(value, prefix=f"{full}.", depth=depth + 1))
        else:
            flat[full] = value
    return flat


def _jsonable(value: Any) -> Any:
    """Convert tuples, NumPy scalars and paths into plain JSON values."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    item = getattr(value, "item", None)
    if callable(item):  # NumPy and torch scalars
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def encode(key: str, value: Any) -> EncodedParam:
    """Encode one flat parameter for storage (a UsageError naming the key if it cannot be)."""
    try:
        return _encode(key, value)
    except UsageError:
        raise
    except RecursionError:
        raise UsageError(f"parameter {key!r} nests too deeply to store") from None
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"parameter {key!r} cannot be stored: {exc}") from None


def _encode(key: str, value: Any) -> EncodedParam:
    plain = _jsonable(value)
    num: float | None
    if isinstance(plain, bool):
        kind, num = "bool", float(plain)
    elif isinstance(plain, int):
        # Kept whole in its JSON text; compared by filters as a double, and not at all
        # past a double's range (10**400 is a valid parameter, just not a sortable one).
        try:
            kind, num = "int", float(plain)
        except OverflowError:
            kind, num = "int", None
    elif isinstance(plain, float):
        kind, num = "float", plain if math.isfinite(plain) else None
    elif plain is None:
        kind, num = "null", None
    elif isinstance(plain, str):
        kind, num = "str", None
    elif isinstance(plain, list):
        kind, num = "list", None
    else:
        kind, num = "dict", None
    text = json.dumps(plain, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return EncodedParam(key=key, value_json=text, value_type=kind, value_num=num)


def decode(value_json: str) -> Any:
    """The stored JSON text back to its Python value."""
    return json.loads(value_json)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``lr=0.1`` -> ``("lr", 0.1)``: the value read as JSON when it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"parameter {text!r} must look like key=value (for example lr=0.1)")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    except RecursionError:
        raise UsageError(f"parameter {key.strip()!r} nests too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise UsageError(f"parameter {key.strip()!r}: {exc}") from None
    return key.strip(), value

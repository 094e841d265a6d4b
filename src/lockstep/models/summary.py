"""What a model file holds, read without running it: PyTorch checkpoints, safetensors,
scikit-learn pickles (joblib, skops), ONNX; anything else by size and digest.

Pickles are never unpickled: class names come from the opcode stream, and a PyTorch
checkpoint's structure from an unpickler that builds inert stand-ins for every class
it names (nothing is imported, nothing is called).
"""

from __future__ import annotations

import io
import json
import math
import pickle
import pickletools
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# Tensor names kept per file in the summary (what `models diff` compares); beyond this a
# file is summarised by counts only.
MAX_TENSORS = 20_000
NO_OPTIMIZER = "no optimizer state: training cannot be resumed exactly from this checkpoint"
_PLUMBING = ("__builtin__.", "builtins.", "copyreg.", "_codecs.", "torch._utils.")
_STEP_KEYS = {"epoch", "step", "global_step", "iteration", "iter", "steps", "epochs"}


def summarise(path: Path, name: str) -> dict[str, Any]:
    """A summary of one model file (never raises: an unreadable file says why)."""
    try:
        return _summarise(path, name)
    except Exception as exc:  # a summary must never fail a registration
        return {"format": "unknown", "note": f"could not be read ({type(exc).__name__}: {exc})"}


def _summarise(path: Path, name: str) -> dict[str, Any]:
    lower = name.lower()
    with open(path, "rb") as handle:
        head = handle.read(16)
    if lower.endswith(".safetensors"):
        return _safetensors(path)
    if lower.endswith(".onnx"):
        return _onnx(path)
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickled = [n for n in names if n.endswith("data.pkl")]
            if pickled:
                with archive.open(pickled[0]) as stream:
                    return _torch(stream)
            if "schema.json" in names:
                return _skops(json.loads(archive.read("schema.json")))
        return {"format": "zip", "members": len(names)}
    opened = _decompressed(path, head)
    if opened is not None:
        with opened as stream:
            return _pickle_classes(stream, "joblib")
    if head[:1] == b"\x80":
        with open(path, "rb") as stream:
            return _pickle_classes(stream, "pickle")
    return {"format": "unknown"}


# PyTorch ----------------------------------------------------------------------


class _Tensor:
    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: str, shape: tuple[int, ...]) -> None:
        self.dtype = dtype
        self.shape = shape


class _Storage:
    __slots__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


class _Stub:
    """An inert stand-in for an object of a class the pickle names."""

    qualname = "object"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None
        self.items: list[Any] = []

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)


_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}


def _rebuild_tensor(storage: Any, _offset: Any, size: Any, *_rest: Any) -> _Tensor:
    dtype = storage.dtype if isinstance(storage, _Storage) else "unknown"
    shape = tuple(int(s) for s in size) if isinstance(size, tuple | list) else ()
    return _Tensor(dtype, shape)


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


class _Mapping(dict[Any, Any]):
    """An ordered dict that takes attributes (a state dict's ``_metadata``)."""


class _InertUnpickler(pickle.Unpickler):
    """Builds stand-ins instead of objects: find_class never imports anything."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return _Mapping
        if module == "torch._utils" and name.startswith("_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name.startswith("_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in {"float32", "float16", "bfloat16", "float64"}:
            return name
        return type(name, (_Stub,), {"qualname": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "storage":
            kind = pid[1]
            return _Storage(kind.dtype if isinstance(kind, _StorageType) else str(kind))
        return _Storage("unknown")


def _torch(stream: IO[bytes]) -> dict[str, Any]:
    top = _InertUnpickler(stream).load()
    tensors: dict[str, _Tensor] = {}
    state: dict[str, Any] = {
        "optimizer": False,
        "lr_scheduler": False,
        "grad_scaler": False,
        "rng_state": False,
    }
    classes: list[str] = []
    for key, value, kind in _walk(top, "", state, classes):
        if kind is None and isinstance(value, _Tensor):
            tensors[key] = value
    dtypes = Counter(t.dtype for t in tensors.values())
    parameters = sum(math.prod(t.shape) for t in tensors.values())
    flags = [] if state["optimizer"] else [NO_OPTIMIZER]
    summary: dict[str, Any] = {
        "format": "pytorch",
        "kind": _torch_kind(top, state),
        "tensors": len(tensors),
        "parameters": parameters,
        "dtypes": dict(sorted(dtypes.items())),
        "training_state": state,
        "resumable": bool(state["optimizer"]),
        "flags": flags,
    }
    if isinstance(top, dict):
        summary["keys"] = sorted(str(k) for k in top)[:50]
    named = sorted({c for c in classes if not c.startswith(_PLUMBING)})
    if named:
        summary["classes"] = named[:50]
    if len(tensors) <= MAX_TENSORS:
        summary["tensor_table"] = {k: [list(t.shape), t.dtype] for k, t in tensors.items()}
    return summary


def _torch_kind(top: Any, state: dict[str, Any]) -> str:
    if isinstance(top, _Stub):
        return "pickled module"
    if isinstance(top, dict) and top and all(isinstance(v, _Tensor) for v in top.values()):
        return "state dict"
    return "checkpoint" if any(state.values()) else "state dict"


def _walk(
    value: Any, path: str, state: dict[str, Any], classes: list[str], depth: int = 0
) -> Iterator[tuple[str, Any, str | None]]:
    """(dotted path, value, training-state kind or None) of every leaf; notes the training
    state it recognises by shape (an optimizer's state dict has state and param_groups)."""
    if depth > 40:
        return
    if isinstance(value, _Stub):
        classes.append(value.qualname)
        inner = value.state if value.state is not None else dict(enumerate(value.args))
        yield from _walk(inner, path, state, classes, depth + 1)
        return
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict):
        yield path, value, None
        return
    keys = {str(k) for k in value}
    kind = None
    if {"state", "param_groups"} <= keys:
        kind = "optimizer"
    elif "last_epoch" in keys and ({"base_lrs", "_last_lr"} & keys):
        kind = "lr_scheduler"
    elif {"scale", "growth_factor"} <= keys:
        kind = "grad_scaler"
    if kind is not None:
        state[kind] = True
        yield path, value, kind
        return
    for key, item in value.items():
        name = str(key)
        child = f"{path}.{name}" if path else name
        if name.startswith("_") and name in {"_buffers", "_parameters", "_modules"}:
            child = path  # a pickled module's own attributes: its state dict's names
        if "rng" in name.lower():
            state["rng_state"] = True
            yield child, item, "rng_state"
            continue
        if name.lower() in _STEP_KEYS and isinstance(item, int) and not isinstance(item, bool):
            state[name.lower()] = item
            continue
        yield from _walk(item, child, state, classes, depth + 1)


# safetensors, ONNX -------------------------------------------------------------


def _safetensors(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    table: dict[str, list[Any]] = {}
    parameters = 0
    dtypes: Counter[str] = Counter()
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
        for key in handle.keys():  # noqa: SIM118  (safe_open is no mapping)
            piece = handle.get_slice(key)
            shape = [int(s) for s in piece.get_shape()]
            dtype = str(piece.get_dtype()).lower()
            dtypes[dtype] += 1
            parameters += math.prod(shape)
            table[key] = [shape, dtype]
    summary: dict[str, Any] = {
        "format": "safetensors",
        "tensors": len(table),
        "parameters": parameters,
        "dtypes": dict(sorted(dtypes.items())),
        "metadata": dict(list(metadata.items())[:20]),
    }
    if len(table) <= MAX_TENSORS:
        summary["tensor_table"] = table
    return summary


def _onnx(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:
        return {
            "format": "onnx",
            "note": "install onnx (pip install 'lockstep[onnx]') to read its opset, inputs "
            "and outputs",
        }
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initialised = {i.name for i in graph.initializer}

    def described(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        element = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else ""
        return {"name": value.name, "type": element.lower(), "shape": shape}

    return {
        "format": "onnx",
        "ir_version": int(model.ir_version),
        "producer": model.producer_name,
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "inputs": [described(v) for v in graph.input if v.name not in initialised],
        "outputs": [described(v) for v in graph.output],
        "nodes": len(graph.node),
        "initializers": len(initialised),
    }


# pickles (scikit-learn, joblib, skops) -----------------------------------------


def _decompressed(path: Path, head: bytes) -> IO[bytes] | None:
    """A stream of a joblib file's pickle when the file is compressed, else None."""
    if head[:2] == b"\x1f\x8b":
        import gzip

        return gzip.open(path, "rb")  # type: ignore[return-value]
    if head[:3] == b"BZh":
        import bz2

        return bz2.open(path, "rb")
    if head[:6] == b"\xfd7zXZ\x00" or head[:3] == b"\x5d\x00\x00":
        import lzma

        return lzma.open(path, "rb")
    if head[:1] == b"\x78" and head[1:2] in {b"\x01", b"\x5e", b"\x9c", b"\xda"}:
        import zlib

        # joblib's zlib files: one stream; the pickle opcodes come first.
        data = zlib.decompressobj().decompress(path.read_bytes(), 64 << 20)
        return io.BytesIO(data)
    return None


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING", "BINSTRING"}


def pickle_classes(stream: IO[bytes], limit: int = 200) -> list[str]:
    """The classes a pickle names, in order, read from its opcodes (nothing is loaded)."""
    found: list[str] = []
    memo: dict[int, Any] = {}
    recent: list[Any] = []
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in _STRINGS:
                recent.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in {"BINPUT", "LONG_BINPUT", "PUT"}:
                memo[int(str(arg))] = recent[-1] if recent else None
            elif name in {"BINGET", "LONG_BINGET", "GET"}:
                recent.append(memo.get(int(str(arg))))
            elif name in {"GLOBAL", "INST"}:
                found.append(str(arg).replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(recent) >= 2:
                found.append(f"{recent[-2]}.{recent[-1]}")
            if len(found) >= limit:
                break
    except Exception:
        pass  # joblib writes array bytes between opcodes; what was read is enough
    return found


def _pickle_classes(stream: IO[bytes], serializer: str) -> dict[str, Any]:
    classes = pickle_classes(stream)
    learned = [c for c in classes if c.startswith("sklearn.")]
    unique = list(dict.fromkeys(classes))
    if learned:
        return {
            "format": "scikit-learn",
            "serializer": serializer,
            "estimator": learned[0],
            "classes": list(dict.fromkeys(learned))[:50],
            "note": "a pickle runs code when loaded: load it only from a source you trust",
        }
    return {
        "format": serializer,
        "classes": unique[:50],
        "note": "a pickle runs code when loaded: load it only from a source you trust",
    }


def _skops(schema: Any) -> dict[str, Any]:
    classes: list[str] = []
    stack = [schema]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            if isinstance(item.get("__class__"), str) and isinstance(item.get("__module__"), str):
                classes.append(f"{item['__module__']}.{item['__class__']}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    learned = [c for c in classes if c.startswith("sklearn.")]
    return {
        "format": "scikit-learn" if learned else "skops",
        "serializer": "skops",
        "estimator": (learned or classes or [""])[0],
        "classes": list(dict.fromkeys(learned or classes))[:50],
        "protocol": schema.get("protocol") if isinstance(schema, dict) else None,
    }

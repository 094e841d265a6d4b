"""The records route: datasets, models and lineage, answered by the same classes as
locally, on the project's store. Every argument of a write is checked here by its name
(names, digests, paths, numbers, texts); a version handed in is replaced by the
server's own row, so a client cannot describe one into being."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from lockstep.core import validate
from lockstep.errors import InvalidValue, UsageError
from lockstep.remote.records import METHODS, WRITE, decode, encode
from lockstep.server.scope import Caller, Scope

_TEXT = 1 << 16


def _text(limit: int) -> Callable[[Any], Any]:
    return lambda v: validate.text(v, "text", limit=limit)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def _number(value: Any) -> int:
    return validate.integer(value, "number", 0, 1 << 31)


def _files(value: Any) -> list[Any]:
    from lockstep.meta.datasets import FileEntry

    if not isinstance(value, list | tuple) or not all(isinstance(f, FileEntry) for f in value):
        raise UsageError("files must be a list of file entries")
    seen: set[str] = set()
    checked = []
    for i, f in enumerate(value):
        if not (f.path == "" and len(value) == 1):  # a single file is its version's own
            validate.relative_path(f.path, f"files[{i}].path")
        if f.path in seen:
            raise UsageError(f"files[{i}].path {f.path!r} is listed twice")
        seen.add(f.path)
        validate.digest(f.digest, f"files[{i}].digest")
        validate.integer(f.size, f"files[{i}].size")
        checked.append(dataclasses.replace(f, mode=validate.mode(f.mode, f"files[{i}].mode")))
    return checked


def _role(value: Any) -> str:
    if value not in ("input", "output"):
        raise UsageError("role must be input or output")
    return str(value)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UsageError("expected an object with text keys")
    return value


def _tags(value: Any) -> Any:
    if isinstance(value, dict):  # a model version's tags: key -> value
        return {
            validate.text(k, "tag key", limit=255): validate.text(v, "tag")
            for k, v in value.items()
        }
    if not isinstance(value, list | tuple):
        raise UsageError("tags must be a list of names or an object")
    return [validate.name(t, "tag") for t in value]


def _moves(value: Any) -> list[Any]:
    from lockstep.meta.models import AliasMove

    if not isinstance(value, list | tuple) or not all(isinstance(m, AliasMove) for m in value):
        raise UsageError("moves must be a list of alias moves")
    for m in value:
        validate.name(m.model, "model")
        validate.alias(m.alias)
        for n in (m.from_number, m.to_number):
            _optional(_number)(n)
        for t in (m.host, m.user, m.note, m.key):
            validate.text(t, "alias move", limit=_TEXT)
        float(m.at)
    return list(value)


# What each argument a write may carry must be; an argument not named here is refused.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": lambda v: validate.name(v, "name"),
    "alias": validate.alias,
    "tag": lambda v: validate.name(v, "tag"),
    "key": _text(255),
    "value": _text(_TEXT),
    "manifest_digest": lambda v: validate.digest(v, "manifest digest"),
    "files": _files,
    "message": _text(_TEXT),
    "note": _text(_TEXT),
    "created_by": _text(255),
    "host": _text(255),
    "user": _text(255),
    "source_path": _text(4096),
    "kind": _text(16),
    "number": _optional(_number),
    "pointer": _optional(_number),
    "version_id": lambda v: validate.integer(v, "version id", 1),
    "run_id": _optional(validate.run_id),
    "role": _role,
    "created_at": float,
    "summary": _mapping,
    "tags": _tags,
    "moves": _moves,
}


def _conforms(value: Any, hint: Any) -> bool:
    """Whether value has the type the method declares (every argument, reads too: a
    value of another type never reaches SQL)."""
    import types
    import typing
    from collections import abc

    if hint is Any or hint is typing.Any:
        return True
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, p) for p in params)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is None:
        return isinstance(hint, type) and isinstance(value, hint)
    if origin in (abc.Iterable, abc.Collection) and isinstance(value, dict):
        return all(_conforms(k, params[0] if params else Any) for k in value)  # its keys
    if origin in (list, tuple, set, frozenset, abc.Sequence, abc.Iterable, abc.Collection):
        if not isinstance(value, list | tuple | set | frozenset):
            return False
        element = params[0] if (params and params[-1] is not Ellipsis) or len(params) == 2 else Any
        if origin is tuple and params and params[-1] is not Ellipsis:
            return len(value) == len(params) and all(
                _conforms(v, p) for v, p in zip(value, params, strict=True)
            )
        return all(_conforms(v, element) for v in value)
    if origin in (dict, abc.Mapping):
        key, item = params if params else (Any, Any)
        return isinstance(value, dict) and all(
            _conforms(k, key) and _conforms(v, item) for k, v in value.items()
        )
    return False


@functools.cache
def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """A method's resolved annotations, worked out once (not on every request)."""
    import typing

    return typing.get_type_hints(function)


def _check_types(target: Callable[..., Any], bound: inspect.BoundArguments, name: str) -> None:
    hints = _hints(getattr(target, "__func__", target))
    for argument, value in bound.arguments.items():
        if argument in hints and not _conforms(value, hints[argument]):
            raise UsageError(f"{name}: {argument} must be {hints[argument]}")


def _records(kind: str, engine: Any) -> Any:
    from lockstep.meta.datasets import DatasetRecords
    from lockstep.meta.lineage import LineageQueries
    from lockstep.meta.models import ModelRecords

    return {"datasets": DatasetRecords, "models": ModelRecords, "lineage": LineageQueries}[kind](
        engine
    )


def _own_version(records: Any, value: Any) -> Any:
    """The server's row for a version the client names (by its id)."""
    from lockstep.meta.datasets import DatasetVersion
    from lockstep.meta.models import ModelVersion

    if not isinstance(value, DatasetVersion | ModelVersion):
        raise UsageError("version must be a dataset or model version")
    return records.version_by_id(validate.integer(value.id, "version id", 1))


def call(kind: str, method: str, engine: Any, body: Any, user: str | None) -> Any:
    """Run one records call on the project's store; returns the tagged-JSON result."""
    role = METHODS.get(kind, {}).get(method)
    if role is None:
        raise UsageError(f"no records method {kind}.{method[:40]}")
    if not isinstance(body, dict):
        raise UsageError("the body must be an object with args and kwargs")
    args, kwargs = decode(body.get("args", [])), decode(body.get("kwargs", {}))
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise UsageError("args must be a list and kwargs an object")
    records = _records(kind, engine)
    target = getattr(records, method)
    try:
        bound = inspect.signature(target).bind(*args, **kwargs)
    except TypeError as exc:
        raise UsageError(f"{kind}.{method}: {exc}") from None
    _check_types(target, bound, f"{kind}.{method}")
    if role == WRITE:
        for name, value in list(bound.arguments.items()):
            if name == "version":
                bound.arguments[name] = _own_version(records, value)
                continue
            check = _CHECKS.get(name)
            if check is None:
                raise UsageError(f"{kind}.{method}: argument {name} is not accepted")
            try:
                checked = check(value)
            except (InvalidValue, ValueError, TypeError) as exc:
                raise UsageError(f"{kind}.{method}: {name}: {exc}") from None
            bound.arguments[name] = checked
        if user is not None and "user" in bound.arguments:
            bound.arguments["user"] = user  # who moved an alias is the token's user
    return encode(target(*bound.args, **bound.kwargs))


def add_routes(api: APIRouter) -> None:
    @api.post("/records/{kind}/{method}")
    async def records_call(
        project: Scope, token: Caller, kind: str, method: str, request: Request
    ) -> dict[str, Any]:
        """One call of a dataset, model or lineage records method (see remote/records.py)."""
        import json

        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise UsageError("the request body is not valid JSON") from None
        user = token.user if token is not None else None
        result = await run_in_threadpool(call, kind, method, project.meta.engine, body, user)
        return {"result": result}

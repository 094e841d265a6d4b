"""Dataset, model and lineage records over HTTP: the same methods as ``DatasetRecords``,
``ModelRecords`` and ``LineageQueries``, each call one request to the server, which
answers it with the same class on its own store.

Which methods may be called, and which need a write token, is the one table
``METHODS``; the server checks every written argument (``server/records.py``). Values
travel as tagged JSON (tuples, sets, maps with any keys, the record dataclasses), so a
result reads back exactly as the SQL class returns it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from lockstep.errors import UsageError

READ, WRITE = "read", "write"

METHODS: dict[str, dict[str, str]] = {
    "datasets": {
        "add_version": WRITE,
        "import_version": WRITE,
        "tag": WRITE,
        "delete_version": WRITE,
        "link_run": WRITE,
        "dataset_names": READ,
        "run_links": READ,
        "version_by_id": READ,
        "versions": READ,
        "latest_versions": READ,
        "resolve": READ,
        "files": READ,
        "runs_of": READ,
        "versions_containing": READ,
        "referenced_digests": READ,
    },
    "models": {
        "add_version": WRITE,
        "import_version": WRITE,
        "set_tag": WRITE,
        "delete_version": WRITE,
        "move_alias": WRITE,
        "merge_alias": WRITE,
        "link_run": WRITE,
        "model_names": READ,
        "version_by_id": READ,
        "versions_by_ids": READ,
        "versions": READ,
        "latest_versions": READ,
        "resolve": READ,
        "files": READ,
        "aliases": READ,
        "all_aliases": READ,
        "alias_history": READ,
        "run_links": READ,
        "runs_of": READ,
        "versions_containing": READ,
        "referenced_digests": READ,
    },
    "lineage": {
        "run_files": READ,
        "runs_with_files": READ,
        "version_files": READ,
        "versions_with": READ,
        "links": READ,
        "models_of_runs": READ,
        "runs": READ,
        "dataset_versions": READ,
        "model_versions": READ,
    },
}


def _types() -> dict[str, type]:
    from lockstep.meta.datasets import DatasetVersion, FileEntry
    from lockstep.meta.models import AliasMove, ModelVersion

    return {t.__name__: t for t in (DatasetVersion, FileEntry, ModelVersion, AliasMove)}


def encode(value: Any) -> Any:
    """A value as tagged JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"$set": [encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$type": type(value).__name__, "fields": fields}
    if isinstance(value, Iterator) or hasattr(value, "__iter__"):
        return [encode(v) for v in value]  # an iterable argument: a generator of ids
    raise UsageError(f"cannot send a {type(value).__name__} to a server")


def decode(value: Any, depth: int = 0) -> Any:
    """Tagged JSON back to values; anything else is refused (the server reads this)."""
    if depth > 32:
        raise UsageError("a value nested more than 32 levels deep")
    if isinstance(value, str) and "\x00" in value:
        raise UsageError("a text with a NUL character")  # no record holds one
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise UsageError("an integer past 64 bits")  # no record holds one either
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$tuple" and isinstance(inner, list):
            return tuple(decode(v, depth + 1) for v in inner)
        if tag == "$set" and isinstance(inner, list):
            return {decode(v, depth + 1) for v in inner}
        if tag == "$map" and isinstance(inner, list):
            pairs = [decode(p, depth + 1) for p in inner]
            if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise UsageError("a map must be a list of [key, value] pairs")
            return {_key(k): v for k, v in pairs}
    if isinstance(value, dict) and set(value) == {"$type", "fields"}:
        cls = _types().get(str(value["$type"]))
        fields = value["fields"]
        if cls is None or not isinstance(fields, dict):
            raise UsageError(f"unknown record type {str(value['$type'])[:40]!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        if set(fields) != known:
            raise UsageError(f"a {cls.__name__} needs exactly the fields {sorted(known)}")
        decoded = {k: decode(v, depth + 1) for k, v in fields.items()}
        try:
            return cls(**decoded)
        except TypeError as exc:
            raise UsageError(f"invalid {cls.__name__}: {exc}") from None
    raise UsageError("a value of a shape lockstep does not send")


def _key(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


class ServerRecords:
    """One of the record classes, answered by a server (``kind``: datasets, models or
    lineage). Typed as the class it stands for where the workspace hands it out."""

    def __init__(self, store: Any, kind: str) -> None:
        self._store = store  # the HttpMetaStore: its client, errors and retries
        self._kind = kind

    def __getattr__(self, method: str) -> Any:
        if method not in METHODS.get(self._kind, {}):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            body = {"args": encode(list(args)), "kwargs": encode(dict(kwargs))}
            answer = self._store._request(
                "POST", f"/records/{self._kind}/{method}", body=body, compress=True
            )
            return decode(answer["result"])

        return call

"""Remote documents (datasets, models, manifests, runs), checked before anything in them is used.

A remote is someone else's disk: every path, digest, name and mode in what it
serves is validated here, and a document that fails is refused whole with one
line naming the document and the field. Nothing from a refused document is
fetched, imported or written.
"""

from __future__ import annotations

import math
from typing import Any

from lockstep.core import validate
from lockstep.errors import InvalidValue, RemoteDocumentRefused

_RUN_STATUSES = {"running", "finished", "failed", "killed", "crashed"}
_MAX_ARGV = 100_000


def _refuse(document: str, exc: InvalidValue) -> RemoteDocumentRefused:
    return RemoteDocumentRefused(document, exc.field, exc.rule)


def _number(value: Any, field: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidValue(field, value, "a finite number")


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValue(field, value, "a JSON object")
    return dict(value)


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidValue(field, value, "a JSON list")
    return list(value)


def check_dataset(raw: Any, document: str) -> dict[str, Any]:
    """A dataset document: its name, and per version a number, manifest digest, source
    path (relative to the project: never absolute, never outside it) and tags."""
    try:
        doc = _object(raw, "document")
        validate.name(doc.get("name"), "name")
        for i, item in enumerate(_list(doc.get("versions"), "versions")):
            where = f"versions[{i}]"
            version = _object(item, where)
            validate.integer(version.get("number"), f"{where}.number", 1, 2**31)
            validate.digest(version.get("manifest"), f"{where}.manifest")
            _number(version.get("created_at"), f"{where}.created_at")
            validate.text(version.get("message"), f"{where}.message", optional=True)
            if version.get("source_path") is not None:
                validate.relative_path(
                    version["source_path"], f"{where}.source_path", allow_dot=True
                )
            if version.get("kind") not in ("file", "dir"):
                raise InvalidValue(f"{where}.kind", version.get("kind"), "'file' or 'dir'")
            for j, tag in enumerate(_list(version.get("tags", []), f"{where}.tags")):
                validate.name(tag, f"{where}.tags[{j}]")
    except InvalidValue as exc:
        raise _refuse(document, exc) from None
    return doc


def check_model(raw: Any, document: str) -> dict[str, Any]:
    """A model document: per version a number, manifest digest, producing run, summary and
    tags; the aliases, each pointing at one of those versions; every move of each alias."""
    try:
        doc = _object(raw, "document")
        validate.name(doc.get("name"), "name")
        numbers: set[int] = set()
        for i, item in enumerate(_list(doc.get("versions"), "versions")):
            where = f"versions[{i}]"
            version = _object(item, where)
            numbers.add(validate.integer(version.get("number"), f"{where}.number", 1, 2**31))
            validate.digest(version.get("manifest"), f"{where}.manifest")
            _number(version.get("created_at"), f"{where}.created_at")
            validate.text(version.get("message"), f"{where}.message", optional=True)
            if version.get("run") is not None:
                validate.run_id(version["run"], f"{where}.run")
            validate.text(version.get("created_by", ""), f"{where}.created_by", limit=255)
            _check_digests(_object(version.get("summary", {}), f"{where}.summary"), where)
            for key, value in _object(version.get("tags", {}), f"{where}.tags").items():
                validate.name(key, f"{where}.tags key")
                validate.text(value, f"{where}.tags.{key}", limit=4096)
        for alias, number in _object(doc.get("aliases", {}), "aliases").items():
            validate.alias(alias, "aliases")
            if number not in numbers:
                raise InvalidValue(f"aliases.{alias}", number, "a version number of this model")
        for i, item in enumerate(_list(doc.get("alias_history", []), "alias_history")):
            where = f"alias_history[{i}]"
            move = _object(item, where)
            validate.alias(move.get("alias"), f"{where}.alias")
            for end in ("from", "to"):
                if move.get(end) is not None:
                    validate.integer(move[end], f"{where}.{end}", 1, 2**31)
            _number(move.get("at"), f"{where}.at")
            for key in ("host", "user"):
                validate.text(move.get(key), f"{where}.{key}", limit=255)
            validate.text(move.get("note", ""), f"{where}.note", limit=4096)
            entry_key: Any = move.get("key")
            if (
                not isinstance(entry_key, str)
                or len(entry_key) != 32
                or not set(entry_key) <= set("0123456789abcdef")
            ):
                raise InvalidValue(f"{where}.key", entry_key, "32 lowercase hex digits")
    except InvalidValue as exc:
        raise _refuse(document, exc) from None
    return doc


def check_manifest(raw: Any, document: str) -> dict[str, Any]:
    """A version's manifest: each file's relative path, size, mode and digest."""
    try:
        manifest = _object(raw, "manifest")
        kind = manifest.get("kind")
        files = _list(manifest.get("files"), "files")
        seen: set[str] = set()
        for i, entry in enumerate(files):
            where = f"files[{i}]"
            if not isinstance(entry, list) or len(entry) != 4:
                raise InvalidValue(where, entry, "[path, size, mode, digest]")
            path, size, mode, digest = entry
            if kind == "file" and len(files) == 1 and path == "":
                pass  # a single-file dataset: the file is the version's own path
            else:
                validate.relative_path(path, f"{where}.path")
            if path in seen:
                raise InvalidValue(f"{where}.path", path, "listed once")
            seen.add(path)
            validate.integer(size, f"{where}.size")
            validate.mode(mode, f"{where}.mode")
            validate.digest(digest, f"{where}.digest")
        _no_path_through_a_file(seen)
    except InvalidValue as exc:
        raise _refuse(document, exc) from None
    return manifest


def _no_path_through_a_file(paths: set[str]) -> None:
    """'a' and 'a/b' cannot both be files: the second would have to go through the first."""
    for path in paths:
        parts = path.split("/")
        for end in range(1, len(parts)):
            prefix = "/".join(parts[:end])
            if prefix in paths:
                raise InvalidValue("files", path, f"not a path through the file {prefix!r}")


def check_run(raw: Any, document: str) -> dict[str, Any]:
    """A run document: its id, its files (artifacts, code, inputs) and every digest named
    anywhere in it; file modes keep only the executable bit."""
    try:
        doc = _object(raw, "document")
        validate.run_id(doc.get("id"), "id")
        validate.text(doc.get("name"), "name", limit=256)
        validate.text(doc.get("experiment"), "experiment", limit=256)
        if doc.get("status") not in _RUN_STATUSES:
            raise InvalidValue("status", doc.get("status"), " | ".join(sorted(_RUN_STATUSES)))
        _number(doc.get("start_time"), "start_time")
        _number(doc.get("end_time"), "end_time", optional=True)
        for i, item in enumerate(_list(doc.get("artifacts", []), "artifacts")):
            where = f"artifacts[{i}]"
            artifact = _object(item, where)
            validate.relative_path(artifact.get("path"), f"{where}.path")
            validate.digest(artifact.get("digest"), f"{where}.digest")
            validate.integer(artifact.get("size"), f"{where}.size")
        sections = _object(doc.get("sections", {}), "sections")
        _check_digests(sections, "sections")
        _check_code(sections.get("code"))
        _check_command(sections.get("command"))
        for i, entry in enumerate(
            _list(sections.get("read_then_written", []), "read_then_written")
        ):
            validate.relative_path(
                _object(entry, "read_then_written").get("path"), f"read_then_written[{i}].path"
            )
        for kind, key in (("datasets", "dataset"), ("models", "model")):
            for i, item in enumerate(_list(doc.get(kind, []), kind)):
                link = _object(item, f"{kind}[{i}]")
                validate.name(link.get(key), f"{kind}[{i}].{key}")
                validate.integer(link.get("version"), f"{kind}[{i}].version", 1, 2**31)
                if link.get("role") not in ("input", "output"):
                    raise InvalidValue(f"{kind}[{i}].role", link.get("role"), "input | output")
    except InvalidValue as exc:
        raise _refuse(document, exc) from None
    return doc


def _check_digests(value: Any, where: str) -> None:
    """Every "digest" anywhere in the sections is a digest (they are what pull fetches)."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            if "digest" in item:
                validate.digest(item["digest"], f"{path}.digest")
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))


def _check_code(code: Any) -> None:
    if code is None or (isinstance(code, dict) and set(code) == {"unavailable"}):
        return
    code = _object(code, "sections.code")
    for i, raw in enumerate(_list(code.get("files", []), "sections.code.files")):
        entry = _object(raw, f"sections.code.files[{i}]")
        validate.relative_path(entry.get("path"), f"sections.code.files[{i}].path")
        validate.mode(entry.get("mode"), f"sections.code.files[{i}].mode")
    commit = code.get("commit")
    if commit is not None and (
        not isinstance(commit, str) or not commit.isalnum() or len(commit) > 64
    ):
        raise InvalidValue("sections.code.commit", commit, "a git commit id")


def _check_command(command: Any) -> None:
    if command is None:
        return
    command = _object(command, "sections.command")
    argv = _list(command.get("argv", []), "sections.command.argv")
    if len(argv) > _MAX_ARGV or not all(isinstance(a, str) and "\x00" not in a for a in argv):
        raise InvalidValue("sections.command.argv", argv[:3], "a list of strings")
    validate.relative_path(command.get("cwd", "."), "sections.command.cwd", allow_dot=True)

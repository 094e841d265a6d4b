"""MLflow's artifacts stored by content: files put through its artifact proxy (or the
plugin's repository) become objects, named by their path under the proxy in SQL, and a
run's files are also its lockstep artifacts.

Paths from a client are hostile: each is checked as a clean relative path before it names
anything, and only ever names a row; the bytes go to the object store by their digest, so
nothing is written outside it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.core import validate
from lockstep.errors import InvalidValue, MlflowApiError

if TYPE_CHECKING:
    from lockstep.meta.datasets import FileEntry
    from lockstep.meta.mlflow_records import MlflowRecords
    from lockstep.objects.store import LocalObjectStore
    from lockstep.workspace import Workspace

# Where a run's artifacts show among its lockstep artifacts.
RUN_PREFIX = "mlflow/"
_RUN_PATH = re.compile(r"runs/([0-9a-z]{26})/artifacts/(.+)")
_MODEL_ROOT = re.compile(r"models/(m-[0-9a-f]{32})/artifacts")


def clean(path: str) -> str:
    """A proxy path as a clean relative path ('' for the root), or a 400 (an absolute one
    too: nothing from a client names a place outside the proxy)."""
    if path.startswith("/"):
        raise MlflowApiError("INVALID_PARAMETER_VALUE", f"artifact path {path[:200]!r} is absolute")
    stripped = path.rstrip("/")
    if not stripped:
        return ""
    try:
        return validate.relative_path(stripped, "artifact path")
    except InvalidValue as exc:
        raise MlflowApiError("INVALID_PARAMETER_VALUE", str(exc)) from None


def listing(records: MlflowRecords, root: str, inner: str) -> list[dict[str, Any]]:
    """The files and folders directly under root/inner, paths relative to root."""
    inner = clean(inner)
    base = f"{root}/{inner}" if inner else root
    entries: dict[str, dict[str, Any]] = {}
    for row in records.files_under(base):
        rest = row.path[len(base) + 1 :] if base else row.path
        head, _, tail = rest.partition("/")
        relative = f"{inner}/{head}" if inner else head
        if tail:
            entries.setdefault(relative, {"path": relative, "is_dir": True})
        else:
            entries[relative] = {"path": relative, "is_dir": False, "file_size": row.size}
    return [entries[k] for k in sorted(entries)]


def source_root(source: str, scheme: str) -> str | None:
    """The proxy path a model version's source names, or None for an address elsewhere."""
    if source.startswith("models:/"):
        model_id = source.removeprefix("models:/").strip("/")
        return f"models/{model_id}/artifacts" if re.fullmatch(r"m-[0-9a-f]{32}", model_id) else None
    if source.startswith("runs:/"):
        run_id, _, inner = source.removeprefix("runs:/").partition("/")
        if not re.fullmatch(r"[0-9a-z]{26}", run_id):
            return None
        inner = clean(inner)
        return f"runs/{run_id}/artifacts" + (f"/{inner}" if inner else "")
    for prefix in (f"{scheme}:", "mlflow-artifacts:", "lockstep:"):
        if source.startswith(prefix):
            return clean(source.removeprefix(prefix).lstrip("/")) or None
    return None


def source_files(
    records: MlflowRecords, source: str, scheme: str
) -> tuple[list[FileEntry], str | None]:
    """The files under a model version's source (paths relative to it), and its root."""
    from lockstep.meta.datasets import FileEntry

    root = source_root(source, scheme)
    if root is None:
        return [], None
    entries = [
        FileEntry(path=row.path[len(root) + 1 :], digest=row.digest, size=row.size, mode=0o644)
        for row in records.files_under(root)
    ]
    return entries, root


def record(workspace: Workspace, records: MlflowRecords, path: str, digest: str, size: int) -> None:
    """Name the stored object at path; a run's file joins that run's artifacts."""
    from lockstep.core.records import Artifact

    records.put_file(path, digest, size)
    match = _RUN_PATH.fullmatch(path)
    if match and workspace.meta.has_run(match.group(1)):
        workspace.meta.add_artifacts(
            match.group(1),
            [Artifact(path=RUN_PREFIX + match.group(2), digest=digest, size=size, kind="artifact")],
        )


def store_file(objects: LocalObjectStore, source: Path) -> tuple[str, int]:
    """Store a finished upload (moved, not copied, into the store) and return its digest
    and size; on S3, the object goes to the bucket."""
    from lockstep.objects.hashing import hash_file

    digest, size = hash_file(source)
    objects.put_fetched(digest, lambda tmp: os.replace(source, tmp))
    return digest, size


def read(objects: LocalObjectStore, records: MlflowRecords, path: str) -> tuple[str, int]:
    """The digest and size of the file at path, or a 404."""
    found = records.file(clean(path))
    if found is None:
        raise MlflowApiError("RESOURCE_DOES_NOT_EXIST", f"Artifact {path[:200]!r} not found")
    return found.digest, found.size


def chunks(objects: LocalObjectStore, digest: str, size: int = 1 << 20) -> Iterator[bytes]:
    with objects.open(digest) as handle:
        while piece := handle.read(size):
            yield piece


MAX_PARTS = 10_000
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{32}")


def start_upload(staging: Path, target: str, parts: int) -> str:
    """A multipart upload of parts parts to target: its id (192 random bits)."""
    import json
    import secrets

    upload = secrets.token_urlsafe(24)
    where = staging / f"mpu-{upload}"
    where.mkdir(parents=True)
    (where / "upload.json").write_text(json.dumps({"target": target, "parts": parts}))
    return upload


def upload_dir(staging: Path, upload: str, target: str | None = None) -> Path:
    """The staging folder of a multipart upload in flight (for target, when given)."""
    import json

    where = staging / f"mpu-{upload}"
    if not _UPLOAD_ID.fullmatch(upload) or not (where / "upload.json").is_file():
        raise MlflowApiError("RESOURCE_DOES_NOT_EXIST", "no such multipart upload in flight")
    if target is not None and json.loads((where / "upload.json").read_text())["target"] != target:
        raise MlflowApiError("INVALID_PARAMETER_VALUE", "that upload is of another path")
    return where


def _parts(where: Path) -> int:
    import json

    return int(json.loads((where / "upload.json").read_text())["parts"])


def part_path(where: Path, number: str) -> Path:
    if not number.isdigit() or not 1 <= int(number) <= _parts(where):
        raise MlflowApiError("INVALID_PARAMETER_VALUE", f"no part {number[:12]!r} in this upload")
    return where / f"part-{int(number)}"


def join_parts(where: Path) -> Path:
    """The parts in order as one file, once every part arrived."""
    import shutil

    count = _parts(where)
    missing = [n for n in range(1, count + 1) if not (where / f"part-{n}").is_file()]
    if missing:
        raise MlflowApiError(
            "INVALID_STATE", f"parts {', '.join(map(str, missing[:10]))} have not arrived"
        )
    joined = where / "joined"
    with open(joined, "wb") as out:
        for n in range(1, count + 1):
            with open(where / f"part-{n}", "rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
    return joined


def drop_upload(where: Path) -> None:
    import shutil

    shutil.rmtree(where, ignore_errors=True)

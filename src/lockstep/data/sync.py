"""``lockstep push`` and ``lockstep pull``: objects and metadata to and from a remote.

Push uploads only the objects the remote lacks, in parallel, then writes one
JSON document per dataset, per model and per run, objects first so a reader never finds a
document whose bytes are missing. Pull reads the documents, downloads only the
objects missing here (each verified against its digest before it becomes
visible), then imports the datasets and runs it does not have. Both can be
interrupted and simply run again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.core.canonical import canonical_json
from lockstep.core.records import digests_named_in
from lockstep.data.versions import manifest_files
from lockstep.objects.remote import Remote
from lockstep.workspace import Workspace

if TYPE_CHECKING:
    from lockstep.meta.models import ModelRecords

TRANSFER_THREADS = 16
Progress = Callable[[str, int], Callable[[], None]]  # (label, total) -> advance


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    objects_sent: int = 0
    objects_present: int = 0
    runs: int = 0
    datasets: int = 0
    conflicts: list[str] = field(default_factory=list)
    runs_updated: int = 0  # pulled before they ended; ended since
    models: int = 0


def _no_progress(_label: str, _total: int) -> Callable[[], None]:
    return lambda: None


def _transfer(
    items: Iterable[str], action: Callable[[str], None], label: str, progress: Progress
) -> int:
    todo = list(items)
    advance = progress(label, len(todo))

    def one(digest: str) -> None:
        action(digest)
        advance()

    with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
        list(pool.map(one, todo))
    return len(todo)


def _shared_source(source_path: str) -> str | None:
    """Where a version lives, as another store may use it: inside the project only. A
    dataset added from outside the project is pushed without a path (a puller's
    checkout puts it in its project, under the dataset's name)."""
    if not source_path or source_path.startswith(("/", "../")) or source_path == "..":
        return None
    return source_path


def dataset_document(workspace: Workspace, name: str) -> dict[str, Any]:
    records = workspace.dataset_records()
    return {
        "schema_version": 1,
        "name": name,
        "versions": [
            {
                "number": v.number,
                "manifest": v.manifest_digest,
                "created_at": v.created_at,
                "message": v.message,
                "source_path": _shared_source(v.source_path),
                "kind": v.kind,
                "tags": list(v.tags),
            }
            for v in records.versions(name)
        ],
    }


def model_document(records: ModelRecords, name: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": name,
        "versions": [
            {
                "number": v.number,
                "manifest": v.manifest_digest,
                "created_at": v.created_at,
                "message": v.message,
                "run": v.run_id,
                "created_by": v.created_by,
                "summary": v.summary,
                "tags": v.tags,
            }
            for v in records.versions(name)
        ],
        "aliases": records.aliases(name),
        "alias_history": [
            {k: v for k, v in move.to_json().items() if k != "model"}
            for move in records.alias_history(name)
        ],
    }


def _push_models(workspace: Workspace, remote: Remote) -> tuple[int, list[str]]:
    """One document per model; refused for a model whose remote alias history has moves
    this store lacks (pushing would erase them: pull first)."""
    from lockstep.core import validate

    records = workspace.model_records()
    there = set(remote.list_meta("models"))
    conflicts: list[str] = []
    names = records.model_names()
    for name in names:
        validate.name(name, "model name")
        doc = model_document(records, name)
        document = f"models/{name}.json"
        if document in there:
            from lockstep.data import documents

            theirs = documents.check_model(_read_document(remote, document), document)
            ours = {m["key"] for m in doc["alias_history"]}
            unknown = [m for m in theirs.get("alias_history", []) if m["key"] not in ours]
            if unknown:
                conflicts.append(
                    f"{name}: the remote has alias moves this store lacks "
                    f"({unknown[0]['alias']} -> v{unknown[0]['to']}); pull, then push again"
                )
                continue
        remote.write_meta(document, canonical_json(doc))
    return len(names), conflicts


def missing_on(remote: Remote, digests: Iterable[str]) -> set[str]:
    """Those of digests the remote lacks (a server answers for just these; other remotes
    are listed)."""
    wanted = set(digests)
    ask = getattr(remote, "missing", None)
    if ask is not None:
        return set(ask(sorted(wanted)))
    return wanted - remote.list_objects()


def run_document(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """A run as a remote keeps it: its record, and the dataset and model versions it
    used."""
    from lockstep.core import validate

    validate.run_id(run_id)
    doc = workspace.meta.export_run(run_id)
    doc["datasets"] = [
        {"dataset": d, "version": n, "role": role}
        for d, n, role in workspace.dataset_records().run_links(run_id)
    ]
    doc["models"] = [
        {"model": m, "version": n, "role": role}
        for m, n, role in workspace.model_records().run_links(run_id)
    ]
    return doc


def push(workspace: Workspace, remote: Remote, progress: Progress = _no_progress) -> SyncReport:
    from lockstep.data.maintenance import referenced

    objects = workspace.objects
    wanted = {d for d in referenced(workspace) if objects.has(d)}
    missing = sorted(missing_on(remote, wanted))
    sent = _transfer(missing, lambda d: remote.upload(d, objects.path(d)), "objects", progress)
    from lockstep.core import validate

    names = workspace.dataset_records().dataset_names()
    for name in names:
        validate.name(name, "dataset name")  # a store from before names were checked
        remote.write_meta(
            f"datasets/{name}.json", canonical_json(dataset_document(workspace, name))
        )
    models, conflicts = _push_models(workspace, remote)
    run_ids = [r.id for r in workspace.meta.search()]
    advance = progress("runs", len(run_ids))
    for run_id in run_ids:
        remote.write_meta(f"runs/{run_id}.json", canonical_json(run_document(workspace, run_id)))
        advance()
    finish = getattr(remote, "finish", None)
    if finish is not None:  # a server imports what was sent now, and says what clashed
        conflicts += finish()
    return SyncReport(
        objects_sent=sent,
        objects_present=len(wanted) - sent,
        runs=len(run_ids),
        datasets=len(names),
        models=models,
        conflicts=conflicts,
    )


def fetch_missing(workspace: Workspace, digests: Iterable[str]) -> list[str]:
    """Download from the default remote the objects missing here; returns those still missing.

    A rerun calls this so that inputs pushed from another machine restore here.
    """
    objects = workspace.objects
    missing = sorted({d for d in digests if not objects.has(d)})
    fetch_from_server = getattr(objects, "fetch", None)
    if missing and fetch_from_server is not None:  # a server's client: the server first
        missing = [d for d in missing if not fetch_from_server(d)]
    remotes = workspace.settings.config.get("remotes", {})
    if not missing or not remotes:
        return missing
    from lockstep.objects.remote import open_remote

    name = workspace.settings.config.get("core", {}).get("remote") or next(iter(remotes))
    remote = open_remote(remotes[name]["url"], remotes[name].get("endpoint_url"))
    absent = missing_on(remote, missing)
    for digest in missing:
        if digest not in absent:

            def fetch(tmp: str, digest: str = digest) -> None:
                remote.download(digest, Path(tmp))

            objects.put_fetched(digest, fetch)
    return [d for d in missing if not objects.has(d)]


def _read_document(remote: Remote, name: str) -> Any:
    """One remote document as JSON; garbage is refused like any invalid document."""
    from lockstep.errors import RemoteDocumentRefused

    try:
        return json.loads(remote.read_meta(name))
    except (ValueError, UnicodeDecodeError):
        raise RemoteDocumentRefused(name, "the document", "JSON") from None


def pull(workspace: Workspace, remote: Remote, progress: Progress = _no_progress) -> SyncReport:
    """Fetch and import what the remote has and this store lacks. Every document is
    checked (paths, digests, names, modes) before anything of the pull is used."""
    from lockstep.objects import guard

    with guard.writing(workspace.objects.root):  # gc waits until the pull has recorded all
        return _pull(workspace, remote, progress)


def _pull(workspace: Workspace, remote: Remote, progress: Progress) -> SyncReport:
    from lockstep.data import documents

    objects = workspace.objects
    dataset_docs = [
        documents.check_dataset(_read_document(remote, n), n) for n in remote.list_meta("datasets")
    ]
    model_docs = [
        documents.check_model(_read_document(remote, n), n) for n in remote.list_meta("models")
    ]
    run_docs = [documents.check_run(_read_document(remote, n), n) for n in remote.list_meta("runs")]
    needed = {v["manifest"] for doc in dataset_docs for v in doc["versions"]}
    needed |= {v["manifest"] for doc in model_docs for v in doc["versions"]}
    for doc in run_docs:
        needed |= digests_named_in(doc["sections"]) | {a["digest"] for a in doc["artifacts"]}

    def fetch(digest: str) -> None:
        objects.put_fetched(digest, lambda tmp: remote.download(digest, Path(tmp)))

    absent = missing_on(remote, {d for d in needed if not objects.has(d)})
    fetched = _transfer(
        sorted(d for d in needed if d not in absent and not objects.has(d)),
        fetch,
        "metadata objects",
        progress,
    )
    manifests = {
        v["manifest"]: documents.check_manifest(
            json.loads(objects.read_bytes(v["manifest"])), f"manifest {v['manifest'][:16]}"
        )
        for doc in (*dataset_docs, *model_docs)
        for v in doc["versions"]
    }
    file_digests = {f[3] for m in manifests.values() for f in m["files"]}
    fetched += _transfer(
        sorted(d for d in file_digests if not objects.has(d)), fetch, "data objects", progress
    )
    records = workspace.data().records
    conflicts: list[str] = []
    updated = 0
    for doc in dataset_docs:
        for v in doc["versions"]:
            manifest = manifests[v["manifest"]]
            files = manifest_files(manifest)
            outcome = records.import_version(
                name=doc["name"],
                number=v["number"],
                manifest_digest=v["manifest"],
                created_at=v["created_at"],
                message=v["message"],
                # A version pushed without a project path lands in the project under its
                # dataset's name.
                source_path=v["source_path"] or doc["name"],
                kind=v["kind"],
                files=files,
                tags=v["tags"],
            )
            if outcome == "conflict":
                conflicts.append(f"{doc['name']}@v{v['number']} differs here and on the remote")
    conflicts += _import_models(workspace, model_docs, manifests)

    model_records = workspace.model_records()
    for doc in run_docs:
        if workspace.meta.import_run(doc) == "updated":
            updated += 1
        for link in doc.get("datasets", []):
            try:
                version = records.resolve(f"{link['dataset']}@v{link['version']}")
            except LookupError:
                continue
            records.link_run(doc["id"], version.id, link["role"])
        for link in doc.get("models", []):
            try:
                model = model_records.resolve(f"{link['model']}@v{link['version']}")
            except LookupError:
                continue
            model_records.link_run(doc["id"], model.id, link["role"])
    return SyncReport(
        objects_sent=fetched,
        objects_present=len(needed) - fetched,
        runs=len(run_docs),
        datasets=len(dataset_docs),
        conflicts=conflicts,
        runs_updated=updated,
        models=len(model_docs),
    )


def _import_models(
    workspace: Workspace, docs: list[dict[str, Any]], manifests: dict[str, Any]
) -> list[str]:
    """Model versions under their own numbers; each alias's history merged, its pointer
    moved only when the remote's history extends this store's (never over a divergence)."""
    from lockstep.meta.models import AliasMove

    records = workspace.model_records()
    conflicts: list[str] = []
    for doc in docs:
        name = doc["name"]
        for v in doc["versions"]:
            outcome = records.import_version(
                name=name,
                number=v["number"],
                manifest_digest=v["manifest"],
                created_at=v["created_at"],
                message=v.get("message") or "",
                run_id=v.get("run"),
                created_by=v.get("created_by", ""),
                summary=v.get("summary", {}),
                files=manifest_files(manifests[v["manifest"]]),
                tags=v.get("tags", {}),
            )
            if outcome == "conflict":
                conflicts.append(f"{name}@v{v['number']} differs here and on the remote")
        moves: dict[str, list[AliasMove]] = {}
        for m in doc.get("alias_history", []):
            moves.setdefault(m["alias"], []).append(
                AliasMove(
                    model=name,
                    alias=m["alias"],
                    from_number=m.get("from"),
                    to_number=m.get("to"),
                    at=m["at"],
                    host=m["host"],
                    user=m["user"],
                    note=m.get("note", ""),
                    key=m["key"],
                )
            )
        pointers = doc.get("aliases", {})
        for alias in sorted(set(moves) | set(pointers)):
            outcome = records.merge_alias(name, alias, moves.get(alias, []), pointers.get(alias))
            if outcome == "diverged":
                conflicts.append(
                    f"{name}@{alias}: moved here and on the remote since they last met; kept "
                    f"here (see `lockstep models log {name}`), move it by hand to settle"
                )
    return conflicts

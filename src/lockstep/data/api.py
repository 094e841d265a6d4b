"""``lockstep.data.use``: a dataset version as a local path, recorded as the run's input."""

from __future__ import annotations

from pathlib import Path

from lockstep.meta.datasets import DatasetVersion
from lockstep.workspace import Workspace


def link_files(workspace: Workspace, run_id: str, paths: dict[str, tuple[str, str]]) -> None:
    """Link a run to the dataset versions that contain its files.

    paths: project path -> (digest, role). A version contains a file when the
    file's path under the version's source path and its digest both match.
    """
    if not paths:
        return
    records = workspace.data().records
    by_digest = records.versions_containing(sorted({d for d, _ in paths.values()}))
    versions: dict[int, DatasetVersion] = {}
    for path, (digest, role) in paths.items():
        for version_id, inner in by_digest.get(digest, []):
            version = versions.get(version_id) or records.version_by_id(version_id)
            versions[version_id] = version
            full = version.source_path if not inner else f"{version.source_path}/{inner}"
            if full == path:
                records.link_run(run_id, version_id, role)


def use(ref: str) -> Path:
    """The local path of a dataset version, checked out if needed, recorded as an input.

    Where the version was added from is used as is when it still holds exactly
    that version; otherwise the version is checked out under the store.
    """
    from lockstep.tracking import active
    from lockstep.tracking.api import open_workspace

    workspace = open_workspace()
    data = workspace.data()
    version = data.records.resolve(ref)
    source = data._absolute(version.source_path)
    if source.exists() and not data.status(version):
        path = source
    else:
        path = workspace.store_dir / "checkouts" / version.dataset / f"v{version.number}"
        data.checkout(version, to=path)
    run = active.current()
    if run is not None:
        data.records.link_run(run.id, version.id, "input")
        run.set_tag(f"dataset.{version.dataset}", f"v{version.number}")
    return path

"""The Python side of models: register from inside a run, get a version as a local path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lockstep.errors import RunStateError, UsageError

if TYPE_CHECKING:
    from lockstep.workspace import Workspace


def register(
    name: str,
    path: str | os.PathLike[str],
    *,
    aliases: Sequence[str] = (),
    message: str = "",
) -> str:
    """Register path (a file or folder, relative to the working directory) as a new version
    of model name, made by the active run; files not yet recorded are logged as the run's
    outputs first (one hash pass, stored by the store's link strategies)."""
    from lockstep.models.registry import ModelRegistry
    from lockstep.tracking import active
    from lockstep.tracking.api import open_workspace

    run = active.current()
    if run is None:
        raise RunStateError(
            "lockstep.models.register needs an active run: call it inside `lockstep.start()` "
            "or a script under `lockstep run`, or use `lockstep models register --run RUN`"
        )
    workspace = open_workspace()
    source = Path(path).resolve()
    if not source.exists():
        raise UsageError(f"{path} does not exist; save the model before registering it")
    try:
        relative = source.relative_to(workspace.project_root.resolve()).as_posix()
    except ValueError:
        raise UsageError(
            f"{path} is outside the project ({workspace.project_root}); save the model inside it"
        ) from None
    run.log_outputs(source)
    registry = ModelRegistry(workspace)
    result = registry.register(
        name,
        run=workspace.meta.get_run(run.id),
        paths=[relative],
        message=message,
        aliases=aliases,
        allow_unfinished=True,  # the run registering is this one, still running
    )
    return result.version.ref


def get(ref: str) -> Path:
    """The local path of a model version (the file when it is one file, else its folder),
    materialised under the store; recorded as an input of the active run."""
    from lockstep.models.registry import ModelRegistry
    from lockstep.tracking import active
    from lockstep.tracking.api import open_workspace

    workspace = open_workspace()
    registry = ModelRegistry(workspace)
    version = registry.records.resolve(ref)
    path = registry.local_path(version)
    run = active.current()
    if run is not None:
        registry.records.link_run(run.id, version.id, "input")
        run.set_tag(f"model.{version.model}", f"v{version.number}")
    return path


def link_inputs(workspace: Workspace, run_id: str, digests: Sequence[str]) -> None:
    """Link a run to the model versions whose files it read (by content)."""
    if not digests:
        return

    records = workspace.model_records()
    found = records.versions_containing(sorted(set(digests)))
    for version_id in sorted({v for versions in found.values() for v in versions}):
        records.link_run(run_id, version_id, "input")

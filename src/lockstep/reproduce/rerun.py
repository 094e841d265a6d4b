"""``lockstep rerun``: rebuild a run's code and data, then run its command again.

The new run is recorded in the same store, linked to the original as
``reproduction_of``; before it starts, every difference between the recorded
environment and this one (Python, packages, hardware) is reported.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from lockstep.capture.packages import installed_distributions
from lockstep.core.records import RunRecord
from lockstep.errors import UsageError
from lockstep.reproduce.materialize import check_available, cleanup, materialize
from lockstep.reproduce.recipe import Recipe
from lockstep.reproduce.venv import command_in, recreate
from lockstep.tracking.launcher import LaunchRequest, LaunchResult, launch
from lockstep.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class RerunOptions:
    workdir: Path | None = None
    keep: bool = False
    env: str = "current"  # or "recreate": a fresh virtual environment with the recorded pins
    name: str | None = None
    tags: Mapping[str, str] | None = None


def environment_differences(record: RunRecord) -> list[str]:
    """How this machine's Python, packages and hardware differ from the recorded ones."""
    notes: list[str] = []
    environment = record.sections.get("environment", {})
    recorded_python = environment.get("interpreter", {}).get("version")
    if recorded_python and recorded_python != platform.python_version():
        notes.append(f"python: recorded {recorded_python}, here {platform.python_version()}")
    packages = environment.get("packages")
    if isinstance(packages, list):
        recorded = {p["name"]: p["version"] for p in packages}
        here = {p["name"]: p["version"] for p in installed_distributions()}
        for name in sorted(recorded.keys() | here.keys()):
            before, now = recorded.get(name), here.get(name)
            if before == now:
                continue
            if before is None:
                notes.append(f"package {name}: not recorded, here {now}")
            elif now is None:
                notes.append(f"package {name}: recorded {before}, missing here")
            else:
                notes.append(f"package {name}: recorded {before}, here {now}")
    hardware = record.sections.get("hardware", {})
    cpu = hardware.get("cpu", {})
    if isinstance(cpu, dict) and cpu.get("architecture") not in (None, platform.machine()):
        notes.append(f"cpu architecture: recorded {cpu['architecture']}, here {platform.machine()}")
    if isinstance(cpu, dict) and cpu.get("model"):
        from lockstep.capture.hardware import capture_hardware

        here_cpu = capture_hardware().get("cpu", {})
        if isinstance(here_cpu, dict) and here_cpu.get("model") != cpu["model"]:
            notes.append(f"cpu: recorded {cpu['model']}, here {here_cpu.get('model')}")
    return notes


def unrecorded_variables(
    workspace: Workspace, recipe: Recipe, environ: Mapping[str, str]
) -> list[str]:
    """Variables lockstep records that are set here but were not in the recorded run: a rerun
    must not get them (an OMP_NUM_THREADS of the verifier's shell changes results)."""
    from lockstep.capture.envvars import capture_variables

    extra = workspace.settings.config.get("capture", {}).get("env", ())
    here = capture_variables(environ, extra)
    keep = {"PYTHONHASHSEED", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV"}
    return sorted(k for k in here if k not in recipe.variables and k not in keep)


def variable_differences(
    workspace: Workspace, recipe: Recipe, environ: Mapping[str, str]
) -> list[str]:
    """How this shell's recorded-kind variables differ from the record, and what the rerun gets."""
    notes = [
        f"variable {name}: set here to {environ[name]!r}, not in the record; removed for the rerun"
        for name in unrecorded_variables(workspace, recipe, environ)
    ]
    from lockstep.capture.secrets import REDACTED, redact_url

    for name, value in sorted(recipe.variables.items()):
        here = environ.get(name)
        if here is not None:
            here = redact_url(here)  # never print a credential a URL carries
        if here != value and REDACTED in value:
            notes.append(
                f"variable {name}: recorded with its credentials redacted; the rerun keeps "
                "this shell's value" + (" (unset here)" if here is None else "")
            )
        elif here != value:
            now = "unset here" if here is None else f"here {here!r}"
            notes.append(f"variable {name}: recorded {value!r}, {now}; the rerun gets {value!r}")
    return notes


def _copy_secret_files(recipe: Recipe, here: Path, rebuilt: Path, notify: Any) -> None:
    """Secret files the run read are never stored: copy them from this project into the
    rebuilt tree (they are not recorded by the rerun either), or say they are missing."""
    from lockstep.core import validate

    for relative in recipe.secret_files:
        validate.relative_path(relative, "secret file")
        source, target = here / relative, rebuilt / relative
        if not source.is_file():
            (notify or print)(
                f"secret file {relative} was read by the run and is never stored; it is not "
                f"in {here}, so the rerun goes without it"
            )
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o600)


def run_recipe(
    workspace: Workspace,
    recipe: Recipe,
    *,
    experiment: str,
    options: RerunOptions,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    extra_tags: Mapping[str, str] | None = None,
    environment: RunRecord | None = None,
    notify: Any = None,
) -> tuple[LaunchResult, Path]:
    """Materialise a recipe and run it as a new run of the store; returns where it ran."""
    from lockstep.data.sync import fetch_missing

    needed = [d for _, d in recipe.inputs] + [f["digest"] for f in recipe.code.get("files", [])]
    if recipe.code.get("diff"):
        needed.append(recipe.code["diff"]["digest"])
    fetch_missing(workspace, needed)  # from the configured remote, if any
    check_available(recipe, workspace.objects)
    if options.workdir is not None:
        workdir = options.workdir.resolve()
        if workdir.exists() and any(workdir.iterdir()):
            raise UsageError(f"--workdir {workdir} is not empty; give a new or empty directory")
        if workdir.exists():
            workdir.rmdir()
    else:
        # Outside the store: files under the store are never recorded as inputs or outputs.
        workdir = Path(tempfile.mkdtemp(prefix="lockstep-rerun-")) / "work"
    run_dir = materialize(recipe, workdir, workspace.objects)
    project_root = workdir / recipe.project_offset
    _copy_secret_files(recipe, workspace.project_root, project_root, notify)
    env_dir: Path | None = None
    if environment is not None:
        # Beside the tree, never in it: git would see it as untracked code.
        env_dir = workdir.parent / f"{workdir.name}-env"
        bin_dir, problems = recreate(environment, env_dir, notify or (lambda _m: None))
        for problem in problems:
            (notify or print)(f"environment: {problem}")
        recipe = replace(
            recipe,
            argv=command_in(recipe.argv, bin_dir),
            variables={
                **recipe.variables,
                "VIRTUAL_ENV": str(env_dir),
                "PATH": os.pathsep.join([str(bin_dir), environ.get("PATH", "")]),
            },
        )
    tags = {"lockstep.recipe": recipe.digest(), **(extra_tags or {}), **(options.tags or {})}
    from lockstep.capture.secrets import REDACTED

    # A value recorded with its credentials redacted is not given: the shell's stays.
    extra_env = {k: v for k, v in recipe.variables.items() if REDACTED not in v}
    if recipe.source_date_epoch:
        extra_env["SOURCE_DATE_EPOCH"] = recipe.source_date_epoch
    request = LaunchRequest(
        argv=recipe.command_for(environ),
        name=options.name,
        experiment=experiment,
        seed=recipe.seed,
        deterministic=recipe.deterministic,
        params=recipe.params,
        tags=tags,
        cwd=run_dir,
        extra_env=extra_env,
        remove_env=tuple(unrecorded_variables(workspace, recipe, environ)),
        project_root=project_root,
        origin_code=recipe.code,
        origin_project_root=recipe.project_root,
        origin_restored=tuple(
            os.path.normpath(os.path.join(recipe.project_offset, path)) for path, _ in recipe.inputs
        ),
        metrics_from_output=recipe.metrics_from_output,
        metrics_pattern=recipe.metrics_pattern,
        metrics_from_files=recipe.metrics_from_files,
    )
    settings = replace(workspace.settings, home=workspace.store_dir, cwd=run_dir)
    try:
        result = launch(settings, request, environ=environ, stdout=stdout, stderr=stderr)
    finally:
        if not options.keep:
            cleanup(recipe, workdir)
            if env_dir is not None:
                shutil.rmtree(env_dir, ignore_errors=True)
            if options.workdir is None:  # the temporary directory made for it, too
                with contextlib.suppress(OSError):
                    workdir.parent.rmdir()
    return result, workdir


def rerun(
    workspace: Workspace,
    record: RunRecord,
    *,
    options: RerunOptions,
    environ: Mapping[str, str],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    notify: Any = None,
) -> LaunchResult:
    """Run the recorded command again from the record alone; links the new run to record."""
    recipe = Recipe.from_record(record)
    recreating = options.env == "recreate"
    differences = [] if recreating else environment_differences(record)
    differences += variable_differences(workspace, recipe, environ)
    from lockstep.reproduce.outside import changed_outside

    differences += changed_outside(record, None)
    if notify is not None:
        for note in differences or ["environment: same Python, packages, hardware and variables"]:
            notify(note)
    restored = f"code ({recipe.code['kind']}), {len(recipe.inputs)} inputs, seed {recipe.seed}"
    result, _ = run_recipe(
        workspace,
        recipe,
        experiment=record.experiment,
        options=options,
        environ=environ,
        stdout=stdout,
        stderr=stderr,
        extra_tags={
            "reproduction_of": record.id,
            "restored": restored,
            "environment": options.env,
        },
        environment=record if recreating else None,
        notify=notify,
    )
    workspace.meta.set_sections(
        result.run_id,
        {
            "reproduction_of": {
                "run": record.id,
                "name": record.name,
                "environment_differences": differences,
                "python": sys.version.split()[0],
            }
        },
    )
    return result

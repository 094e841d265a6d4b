"""Rebuild a recipe's code and data in a fresh directory, byte for byte.

Git code becomes a detached worktree of the recorded commit with the recorded
binary diff applied and the untracked files restored, so a rerun captures the
same commit and diff as the original; other code is restored file by file.
Inputs are restored by digest at their recorded paths, git-ignored or not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lockstep.core import validate
from lockstep.errors import ObjectMissing, RebuildError, UsageError
from lockstep.objects.store import LocalObjectStore
from lockstep.reproduce.recipe import Recipe


def check_available(recipe: Recipe, objects: LocalObjectStore) -> None:
    """Fail before running anything if some recorded byte is not in the store."""
    for path, digest in recipe.inputs:
        validate.digest(digest, f"input {path} digest")
        if not objects.has(digest):
            raise ObjectMissing(digest, what=f"input {path}")
    for entry in recipe.code.get("files", []):
        if entry.get("stored", True) and not objects.has(entry["digest"]):
            raise ObjectMissing(entry["digest"], what=f"code file {entry['path']}")
        if entry.get("stored") is False:
            raise RebuildError(
                f"code file {entry['path']} was over the size cap and recorded by digest only; "
                "it cannot be restored"
            )
    diff = recipe.code.get("diff")
    if diff and not objects.has(diff["digest"]):
        raise ObjectMissing(diff["digest"], what="the code diff")


def _git(root: Path, *args: str) -> None:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RebuildError(f"git {args[0]} failed: {result.stderr.strip()[:300]}")


def _restore(
    objects: LocalObjectStore, digest: str, top: Path, relative: str, mode: str | None, what: str
) -> None:
    """One recorded file back at top/relative: inside top only, never through a link, with
    only the executable bit of its recorded mode (never setuid, setgid or sticky)."""
    validate.relative_path(relative, what)
    validate.digest(digest, f"{what} digest")
    target = top / relative
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    real_top = os.path.realpath(top)
    if os.path.commonpath([real_top, os.path.realpath(parent)]) != real_top:
        raise RebuildError(f"{what} {relative} would be written outside the rebuilt tree")
    if target.is_symlink() or target.exists():
        target.unlink()
    shutil.copyfile(objects.path(digest), target, follow_symlinks=False)
    os.chmod(target, validate.mode(mode, f"{what} mode"))


def materialize(recipe: Recipe, workdir: Path, objects: LocalObjectStore) -> Path:
    """Rebuild code and inputs under workdir; returns the directory to run in."""
    check_available(recipe, objects)
    code = recipe.code
    if code["kind"] == "git":
        repo = Path(code["root"])
        if not (repo / ".git").exists():
            raise RebuildError(f"the run's git repository {repo} is not here; clone it there")
        if code.get("commit") is None:
            workdir.mkdir(parents=True)
        else:
            _git(repo, "worktree", "add", "--detach", "--force", str(workdir), code["commit"])
        if code.get("diff"):
            patch = workdir / ".lockstep-recorded.diff"
            shutil.copyfile(objects.path(code["diff"]["digest"]), patch)
            os.chmod(patch, 0o644)
            _git(workdir, "apply", "--binary", "--whitespace=nowarn", patch.name)
            patch.unlink()
    elif code["kind"] == "files":
        workdir.mkdir(parents=True)
    else:
        raise UsageError(f"unknown code snapshot kind {code['kind']!r}")
    for entry in code.get("files", []):
        _restore(objects, entry["digest"], workdir, entry["path"], entry.get("mode"), "code file")
    validate.relative_path(recipe.project_offset, "project offset", allow_dot=True)
    validate.relative_path(recipe.cwd, "working directory", allow_dot=True)
    project = workdir / recipe.project_offset
    for path, digest in recipe.inputs:
        _restore(objects, digest, project, path, None, "input")
    return project / recipe.cwd


def cleanup(recipe: Recipe, workdir: Path) -> None:
    """Remove a materialised directory (and its git worktree registration)."""
    if recipe.code.get("kind") == "git" and recipe.code.get("commit"):
        repo = Path(recipe.code["root"])
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(workdir)],
            capture_output=True,
            check=False,
        )
    shutil.rmtree(workdir, ignore_errors=True)

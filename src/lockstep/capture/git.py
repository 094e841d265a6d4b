"""The code's state in git: commit, branch, remote, dirty flag, the diff and untracked files."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lockstep.capture.result import Unavailable


@dataclass(frozen=True, kw_only=True)
class GitState:
    root: Path
    commit: str | None  # None before the first commit
    branch: str | None  # None on a detached HEAD
    remote: str | None
    dirty: bool
    changed: list[str] = field(default_factory=list)  # tracked files that differ from HEAD
    untracked: list[str] = field(default_factory=list)  # not ignored, relative to root
    diff: bytes = b""  # `git diff --binary HEAD`: applies with `git apply`


def _git(root: Path, *args: str) -> bytes:
    result = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode(errors="replace").strip() or f"git {args[0]}")
    return result.stdout


def find_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def capture_git(start: Path) -> GitState | Unavailable:
    """The repository state at start (or Unavailable outside git or without git)."""
    root = find_root(start)
    if root is None:
        return Unavailable(reason="not inside a git repository")
    try:
        # One status call gives the commit, the branch, changed and untracked files.
        status = _git(root, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all")
    except FileNotFoundError:
        return Unavailable(reason="git is not installed")
    except RuntimeError as exc:
        return Unavailable(reason=f"git status failed: {exc}")
    commit = branch = None
    changed: list[str] = []
    untracked: list[str] = []
    records = status.decode("utf-8", errors="surrogateescape").split("\0")
    index = 0
    while index < len(records):
        record = records[index]
        index += 1
        if record.startswith("# branch.oid "):
            oid = record.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif record.startswith("1 "):
            changed.append(record.split(" ", 8)[8])
        elif record.startswith("2 "):
            changed.append(record.split(" ", 9)[9])
            index += 1  # the rename's original path follows
        elif record.startswith("u "):
            changed.append(record.split(" ", 10)[10])
        elif record.startswith("? "):
            untracked.append(record[2:])
    remote = None
    try:
        remote = _git(root, "config", "--get", "remote.origin.url").decode().strip() or None
    except RuntimeError:
        remote = None
    diff = b""
    if changed and commit is not None:
        diff = _git(root, "diff", "--binary", "--no-color", "--no-ext-diff", "HEAD")
    return GitState(
        root=root,
        commit=commit,
        branch=branch,
        remote=remote,
        dirty=bool(changed or untracked),
        changed=sorted(changed),
        untracked=sorted(untracked),
        diff=diff,
    )

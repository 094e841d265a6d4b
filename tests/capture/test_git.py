from __future__ import annotations

import subprocess
from pathlib import Path

from lockstep.capture.git import GitState, capture_git
from lockstep.capture.result import Unavailable
from tests.gitrepo import git, make_repo


def test_clean_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"train.py": "print(1)\n"})
    git(repo, "remote", "add", "origin", "https://example.com/team/repo.git")
    state = capture_git(repo)
    assert isinstance(state, GitState)
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()
    assert state.branch == "main"
    assert state.remote == "https://example.com/team/repo.git"
    assert not state.dirty and state.diff == b"" and state.untracked == []


def test_edits_untracked_and_ignored_files(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"train.py": "lr = 0.1\n", ".gitignore": "data/\n", "weights.bin": b"\x00\x01\x02"},
    )
    (repo / "train.py").write_text("lr = 0.2\n")
    (repo / "weights.bin").write_bytes(b"\x00\xff\x02\x03")
    (repo / "notes" / "idea.md").parent.mkdir()
    (repo / "notes" / "idea.md").write_text("try adam\n")
    (repo / "data").mkdir()
    (repo / "data" / "big.csv").write_text("ignored\n")
    state = capture_git(repo / "notes")  # found from a subdirectory
    assert isinstance(state, GitState)
    assert state.dirty
    assert state.changed == ["train.py", "weights.bin"]
    assert state.untracked == ["notes/idea.md"]
    assert b"-lr = 0.1" in state.diff and b"+lr = 0.2" in state.diff
    assert b"GIT binary patch" in state.diff
    # The recorded diff re-applies on a clean checkout of the commit.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (tmp_path / "patch.diff").write_bytes(state.diff)
    git(clone, "apply", str(tmp_path / "patch.diff"))
    assert (clone / "train.py").read_text() == "lr = 0.2\n"
    assert (clone / "weights.bin").read_bytes() == b"\x00\xff\x02\x03"


def test_detached_head_and_repository_without_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "1\n"})
    git(repo, "checkout", "-q", "--detach")
    state = capture_git(repo)
    assert isinstance(state, GitState) and state.branch is None and state.commit
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "x.py").write_text("1\n")
    fresh = capture_git(empty)
    assert isinstance(fresh, GitState)
    assert fresh.commit is None and fresh.untracked == ["x.py"]


def test_outside_git_is_unavailable(tmp_path: Path) -> None:
    result = capture_git(tmp_path)
    assert isinstance(result, Unavailable)
    assert "not inside a git repository" in result.reason

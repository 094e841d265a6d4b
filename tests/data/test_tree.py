"""The tree walk: which files it yields, and how shards split them."""

from __future__ import annotations

import os
from pathlib import Path

from lockstep.data.tree import walk


def make_tree(root: Path) -> None:
    for relative in ("a.txt", "sub/b.txt", "sub/deeper/c.txt", ".git/HEAD", ".lockstep/x"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    (root / "empty").mkdir()
    os.symlink(root / "a.txt", root / "link.txt")
    os.symlink(root / "sub", root / "linked-dir")


def test_walk_yields_regular_files_relative_to_the_root(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = {relative: info.st_size for relative, info in walk(str(tmp_path))}
    # .git and .lockstep are skipped; symlinks inside the tree are not followed
    assert found == {"a.txt": 5, "sub/b.txt": 9, "sub/deeper/c.txt": 16}


def test_a_file_root_is_one_entry_and_a_symlinked_root_is_followed(tmp_path: Path) -> None:
    make_tree(tmp_path)
    [(relative, info)] = list(walk(str(tmp_path / "a.txt")))
    assert relative == "" and info.st_size == 5
    assert {r for r, _ in walk(str(tmp_path / "linked-dir"))} == {"b.txt", "deeper/c.txt"}


def test_shards_split_the_files_exactly(tmp_path: Path) -> None:
    for i in range(200):
        directory = tmp_path / f"d{i % 7}"
        directory.mkdir(exist_ok=True)
        (directory / f"{i}.bin").write_bytes(b"x")
    everything = sorted(r for r, _ in walk(str(tmp_path)))
    shards = [sorted(r for r, _ in walk(str(tmp_path), k, 3)) for k in range(3)]
    assert sorted(r for shard in shards for r in shard) == everything
    assert all(shards), "each shard takes a part"


def test_a_wide_tree_does_not_hold_a_descriptor_per_directory(tmp_path: Path) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for i in range(300):
        (tmp_path / f"dir{i}").mkdir()
        (tmp_path / f"dir{i}" / "f").write_bytes(b"")
    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(in_use + 16, hard), hard))
    try:
        assert len(list(walk(str(tmp_path)))) == 300
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

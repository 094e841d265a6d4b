"""Working-copy snapshots: what status trusts, what it re-reads, and that it never
answers differently from reading every file."""

from __future__ import annotations

import os
import random
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from lockstep.data.changes import Changes, between
from lockstep.data.versions import DataWorkspace
from lockstep.data.worktree import (
    RACY_NS,
    PendingComparison,
    Snapshot,
    Snapshots,
    compare,
)
from lockstep.errors import UsageError
from lockstep.settings import Settings
from lockstep.workspace import Workspace
from tests.data.test_datasets import age_files


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    project = tmp_path / "project"
    (project / "data" / "sub").mkdir(parents=True)
    for i in range(40):
        (project / "data" / ("sub" if i % 2 else "") / f"{i:02d}.bin").write_bytes(os.urandom(32))
    age_files(project / "data")
    opened = Workspace.open(Settings.from_env(environ={}, cwd=project), create=True)
    yield opened
    opened.close()


def digest_of(path: Path) -> str:
    return str(blake3.blake3(path.read_bytes()).hexdigest())


def expected_changes(data: DataWorkspace, root: Path, version_ref: str) -> Changes:
    """Status worked out the slow way: every file read, compared with the version's list."""
    version = data.records.resolve(version_ref)
    return between(
        {f.path: (f.size, f.digest) for f in data.records.files(version.id)},
        {
            str(p.relative_to(root)): (p.stat().st_size, digest_of(p))
            for p in root.rglob("*")
            if p.is_file()
        },
    )


def stat_entries(root: Path) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """Every file under root as a snapshot entry (with a made-up digest)."""
    digest = "0" * 64
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        info = path.stat()
        key = (info.st_ino, info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode))
        entries.append((str(path.relative_to(root)), key, digest))
    return entries


def test_snapshots_round_trip_and_damaged_ones_are_ignored(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path / "worktree")
    taken = Snapshot.taken(
        tmp_path, [("a", (1, 2, 3, 0o644), "ab" * 32)], ("m" * 64, {"x": None}), 10**19
    )
    snapshots.save("train", taken)
    loaded = snapshots.load("train")
    assert loaded is not None and loaded.stats == taken.stats and loaded.digests == taken.digests
    assert loaded.against == ("m" * 64, {"x": None}) and loaded.digest("a") == "ab" * 32
    assert snapshots.load("other") is None
    [path] = (tmp_path / "worktree").iterdir()
    path.write_bytes(path.read_bytes()[:40])  # torn
    assert snapshots.load("train") is None
    path.write_bytes(b"not marshal at all")
    assert snapshots.load("train") is None


def test_recent_entries_are_never_trusted(tmp_path: Path) -> None:
    now = time.time_ns()
    snapshot = Snapshot.taken(
        tmp_path,
        [
            ("old", (1, 1, now - 2 * RACY_NS, 0o644), "00" * 32),
            ("new", (2, 1, now, 0o644), "11" * 32),
        ],
        None,
        now,
    )
    assert snapshot.stat("old")[2] == now - 2 * RACY_NS
    assert snapshot.stat("new")[2] == -1  # matches no real mtime: re-read next time


def test_compare_sees_every_kind_of_change(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    for name in ("same", "grown", "touched", "chmodded", "gone", "d/deep"):
        (root / name).write_bytes(b"12345")
    age_files(root)
    snapshot = Snapshot.taken(root, stat_entries(root), None, time.time_ns())
    assert compare(str(root), snapshot).clean
    (root / "grown").write_bytes(b"123456")
    past = time.time_ns() - 7200 * 10**9
    os.utime(root / "touched", ns=(past, past))
    (root / "chmodded").chmod(0o600)
    (root / "gone").unlink()
    (root / "d" / "new").write_bytes(b"")
    result = compare(str(root), snapshot)
    assert sorted(r for r, _, _ in result.moved) == ["chmodded", "d/new", "grown", "touched"]
    assert result.missing == ["gone"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked shards need fork()")
def test_forked_shards_give_the_same_comparison(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for i in range(300):
        (root / f"d{i % 9}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 9}" / f"{i}").write_bytes(b"x")
    age_files(root)
    snapshot = Snapshot.taken(root, stat_entries(root), None, time.time_ns())
    for i in range(0, 300, 37):
        (root / f"d{i % 9}" / f"{i}").write_bytes(b"changed")
    (root / "d1" / "1").unlink()
    (root / "d0" / "extra").write_bytes(b"")
    forked = PendingComparison(str(root), snapshot, 3, fork=True).result()
    alone = compare(str(root), snapshot)
    assert sorted(forked.moved) == sorted(alone.moved) and len(alone.moved) == 10
    assert forked.missing == alone.missing == ["d1/1"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked shards need fork()")
def test_a_failing_shard_surfaces_its_error(tmp_path: Path) -> None:
    snapshot = Snapshot.taken(tmp_path / "nowhere", [], None, time.time_ns())
    pending = PendingComparison(str(tmp_path / "nowhere"), snapshot, 2, fork=True)
    with pytest.raises(FileNotFoundError):
        pending.result()


def test_status_from_the_snapshot_always_equals_reading_every_file(
    workspace: Workspace,
) -> None:
    """A seeded random walk of edits; after each, status (through the snapshot, with
    files both recent and dated back) must equal the slow answer."""
    data = workspace.data()
    root = workspace.project_root / "data"
    data.add(root, name="train")
    rng = random.Random(7)
    for step in range(60):
        files = sorted(p for p in root.rglob("*") if p.is_file())
        action = rng.choice(["rewrite", "resize", "create", "delete", "chmod", "age", "add"])
        target = rng.choice(files)
        if action == "rewrite":  # same size, new bytes
            target.write_bytes(os.urandom(target.stat().st_size))
        elif action == "resize":
            target.write_bytes(os.urandom(rng.randint(0, 64)))
        elif action == "create":
            (root / rng.choice(["", "sub", "new"]) / f"n{step}.bin").parent.mkdir(exist_ok=True)
            (root / rng.choice(["", "sub"]) / f"n{step}.bin").write_bytes(os.urandom(8))
        elif action == "delete" and len(files) > 5:
            target.unlink()
        elif action == "chmod":
            target.chmod(rng.choice([0o600, 0o644, 0o755]))
        elif action == "age":
            age_files(root, rng.randint(5, 50))
        elif action == "add":
            data.add(root, name="train")
        assert data.status(data.records.resolve("train")) == expected_changes(
            data, root, "train"
        ), f"step {step}: {action} {target}"


def test_a_rewrite_within_the_timestamp_granularity_is_seen(workspace: Workspace) -> None:
    """The racy case: same size, and an mtime put back to what the snapshot saw."""
    data = workspace.data()
    root = workspace.project_root / "data"
    target = root / "00.bin"
    target.write_bytes(b"A" * 32)  # written just now: too recent to trust by stat
    data.add(root, name="train")
    assert not data.status(data.records.resolve("train"))
    before = target.stat()
    target.write_bytes(b"B" * 32)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    changes = data.status(data.records.resolve("train"))
    assert changes.modified == [{"path": "00.bin", "size_before": 32, "size_now": 32}]


def test_checkout_leaves_a_snapshot_that_status_trusts(workspace: Workspace) -> None:
    data = workspace.data()
    root = workspace.project_root / "data"
    first = data.add(root, name="train").version
    (root / "00.bin").write_bytes(b"v2")
    data.add(root, name="train")
    (root / "mine.txt").write_text("not in any version")
    data.checkout(first)
    snapshot = data.snapshots.load("train")
    assert snapshot is not None and snapshot.compared_with(first.manifest_digest)
    assert snapshot.against is not None and snapshot.against[1] == {"mine.txt": None}
    assert data.status(data.records.resolve("train@v1")) == Changes(
        added=[{"path": "mine.txt", "size": 18}]
    )
    assert data.status(data.records.resolve("train")) == expected_changes(data, root, "train")
    assert data.checkout(first)["written"] == 0  # the snapshot says every file is in place
    (root / "sub" / "01.bin").write_bytes(b"a local edit")
    with pytest.raises(UsageError, match="local changes"):
        data.checkout(first)


def test_status_without_a_snapshot_or_for_another_place_reads_the_tree(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = workspace.data()
    root = workspace.project_root / "data"
    version = data.add(root, name="train").version
    (root / "02.bin").unlink()
    data.snapshots.drop("train")
    assert data.status(version).removed == [{"path": "02.bin", "size": 32}]
    snapshot = data.snapshots.load("train")
    assert snapshot is not None and "02.bin" not in snapshot.stats
    data.snapshots.save("train", Snapshot(str(tmp_path), None, {}, b""))  # another root
    assert data.status(version).removed == [{"path": "02.bin", "size": 32}]


def test_snapshots_belong_to_one_python(tmp_path: Path) -> None:
    """marshal's format is per Python version: another one's snapshot is not read."""
    import marshal

    snapshots = Snapshots(tmp_path)
    snapshots.save("train", Snapshot(str(tmp_path), None, {}, b""))
    [path] = tmp_path.iterdir()
    fields = list(marshal.loads(path.read_bytes()))
    fields[1] = (sys.version_info[0], sys.version_info[1] - 1)
    path.write_bytes(marshal.dumps(tuple(fields)))
    assert snapshots.load("train") is None


def test_version_files_come_from_the_manifest_and_a_damaged_one_is_not_trusted(
    workspace: Workspace,
) -> None:
    data = workspace.data()
    version = data.add(workspace.project_root / "data", name="train").version
    from_rows = data.records.files(version.id)
    assert sorted(data.files(version), key=lambda f: f.path) == from_rows
    manifest = data.objects.path(version.manifest_digest)
    manifest.chmod(0o644)
    manifest.write_bytes(manifest.read_bytes().replace(b'"files"', b'"filez"'))
    assert data.files(version) == from_rows  # the metadata's rows, not the damaged object


def test_adding_unchanged_content_again_reads_no_file(workspace: Workspace) -> None:
    data = workspace.data()
    root = workspace.project_root / "data"
    first = data.add(root, name="train")
    again = data.add(root, name="train")
    assert not again.created and again.version == first.version and again.hashed == 0
    (root / "00.bin").write_bytes(b"new content")
    third = data.add(root, name="train")
    assert third.created and third.hashed == 1


def test_manifests_record_the_executable_bit_only(workspace: Workspace) -> None:
    data = workspace.data()
    root = workspace.project_root / "data"
    (root / "00.bin").chmod(0o600)
    (root / "02.bin").chmod(0o750)
    version = data.add(root, name="train").version
    modes = {f.path: f.mode for f in data.files(version)}
    assert modes["00.bin"] == 0o644 and modes["02.bin"] == 0o755 and modes["04.bin"] == 0o644
    (root / "00.bin").chmod(0o444)  # how the copy is held, not what the data is
    assert not data.add(root, name="train").created


def test_hardlinked_adds_keep_executables_and_leave_a_snapshot_that_holds(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = workspace.data()
    data.strategies = ("hardlink", "copy")
    root = workspace.project_root / "data"
    (root / "02.bin").chmod(0o755)
    version = data.add(root, name="train").version
    assert (root / "00.bin").stat().st_nlink == 2  # stored by hardlink, now read-only
    assert (root / "02.bin").stat().st_nlink == 1  # an executable: stored by copy
    assert (root / "02.bin").stat().st_mode & 0o111
    snapshot = data.snapshots.load("train")
    assert snapshot is not None and compare(str(root), snapshot).clean  # modes seen after
    assert not data.add(root, name="train").created  # no new version for read-only files
    data.checkout(version, to=tmp_path / "out")
    assert (tmp_path / "out" / "00.bin").stat().st_nlink == 3
    out_exec = tmp_path / "out" / "02.bin"
    assert out_exec.stat().st_nlink == 1 and out_exec.stat().st_mode & 0o777 == 0o755


def test_a_process_with_other_threads_never_forks(tmp_path: Path) -> None:
    """A large snapshot would be walked by forked shards, but not beside another thread
    (a child could deadlock on a lock that thread held)."""
    import threading

    from lockstep.data.worktree import may_fork, start_comparison

    root = tmp_path / "tree"
    root.mkdir()
    (root / "only.bin").write_bytes(b"x")
    many = [(f"gone/{i}", (i, 1, 1, 0o644), "0" * 64) for i in range(20_000)]
    snapshot = Snapshot.taken(root, many, None, time.time_ns())
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert not may_fork()
        pending = start_comparison(str(root), snapshot)
        assert not pending.forked
        result = pending.result()
    finally:
        stop.set()
        helper.join()
    assert [m[0] for m in result.moved] == ["only.bin"] and len(result.missing) == 20_000

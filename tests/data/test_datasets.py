"""Datasets end to end through the CLI and the API, on a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3
import pytest

from tests.conftest import Backend, clean_env
from tests.tracking.test_launcher import lockstep, show


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data" / "images").mkdir(parents=True)
    for i in range(30):
        (root / "data" / "images" / f"{i:03d}.bin").write_bytes(os.urandom(64) + bytes([i]))
    (root / "data" / "labels.csv").write_text(
        "id,label\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    )
    age_files(root / "data")
    assert lockstep(root, "init").returncode == 0
    return root


def age_files(root: Path, seconds: int = 3600) -> None:
    """Date files back, as data usually is: files written within a second of being hashed
    are not trusted by their stat (they could change again without their mtime moving)."""
    past = time.time_ns() - seconds * 1_000_000_000
    for path in [root, *root.rglob("*")]:
        os.utime(path, ns=(past, past))


def start_add(root: Path, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`lockstep data add data --name NAME` started in the background, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "lockstep", "data", "add", "data", "--name", name],
        cwd=root,
        env=clean_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def data_json(project: Path, *args: str) -> object:
    result = lockstep(project, "data", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_versions_status_diff_and_references(project: Path) -> None:
    first = lockstep(project, "data", "add", "data", "--name", "train", "-m", "initial")
    assert first.returncode == 0 and "train@v1: 31 files" in first.stdout
    again = lockstep(project, "data", "add", "data", "--name", "train")
    assert "unchanged" in again.stdout and "0 hashed" not in again.stdout
    (project / "data" / "labels.csv").write_text("id,label\n0,1\n")
    (project / "data" / "images" / "000.bin").unlink()
    (project / "data" / "images" / "new.bin").write_bytes(b"new")
    status = data_json(project, "status", "train")
    assert status == {
        "train": {
            "version": "v1",
            "added": [{"path": "images/new.bin", "size": 3}],
            "removed": [{"path": "images/000.bin", "size": 65}],
            "modified": [{"path": "labels.csv", "size_before": 149, "size_now": 13}],
        }
    }
    second = lockstep(project, "data", "add", "data", "--name", "train", "-m", "relabel")
    assert "train@v2" in second.stdout and "(2 hashed" in second.stdout  # the rest from cache
    assert lockstep(project, "data", "tag", "train@v1", "golden").returncode == 0
    diff = data_json(project, "diff", "train@golden", "train@latest")
    assert [d["path"] for d in diff["modified"]] == ["labels.csv"]  # type: ignore[index]
    log = data_json(project, "log", "train")
    assert [v["version"] for v in log] == [2, 1]  # type: ignore[index]
    assert log[1]["tags"] == ["golden"] and log[0]["message"] == "relabel"  # type: ignore[index]
    prefix = log[1]["manifest"][:8]  # type: ignore[index]
    assert data_json(project, "diff", f"train@{prefix}", "train@v1") == {
        "added": [],
        "removed": [],
        "modified": [],
    }
    listing = data_json(project, "ls")
    assert listing[0]["ref"] == "train@v2"  # type: ignore[index]
    for bad in ("nothing@v1", "train@v9", "train@zz"):
        result = lockstep(project, "data", "diff", bad, "train@v1")
        assert result.returncode == 2 and "Traceback" not in result.stderr


def test_checkout_is_byte_exact_and_protects_local_changes(project: Path, tmp_path: Path) -> None:
    lockstep(project, "data", "add", "data", "--name", "train")
    original = {
        p.relative_to(project / "data"): p.read_bytes()
        for p in (project / "data").rglob("*")
        if p.is_file()
    }
    target = tmp_path / "copy"
    result = lockstep(project, "data", "checkout", "train@v1", "--to", str(target), "--verify")
    assert result.returncode == 0, result.stderr
    assert {
        p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()
    } == original
    # Edit, make v2, then go back to v1 in place.
    (project / "data" / "labels.csv").write_text("changed\n")
    (project / "data" / "extra.txt").write_text("extra\n")
    lockstep(project, "data", "add", "data", "--name", "train")
    (project / "data" / "mine.txt").write_text("not versioned\n")
    back = lockstep(project, "data", "checkout", "train@v1")
    assert back.returncode == 0, back.stderr
    assert (project / "data" / "labels.csv").read_bytes() == original[Path("labels.csv")]
    assert not (project / "data" / "extra.txt").exists()  # v2's file, removed
    assert (project / "data" / "mine.txt").exists() and "mine.txt" in back.stderr
    # A local edit that is in no version is never overwritten silently.
    (project / "data" / "labels.csv").write_text("my local edit\n")
    refused = lockstep(project, "data", "checkout", "train@v2")
    assert refused.returncode == 2 and "local changes" in refused.stderr
    assert (project / "data" / "labels.csv").read_text() == "my local edit\n"
    forced = lockstep(project, "data", "checkout", "train@v2", "--force")
    assert forced.returncode == 0
    assert (project / "data" / "labels.csv").read_text() == "changed\n"


def test_hardlinks_when_configured_add_and_check_out_without_copying(
    project: Path, tmp_path: Path
) -> None:
    (project / ".lockstep" / "config.toml").write_text('[data]\nlink = ["hardlink", "copy"]\n')
    source = project / "data" / "labels.csv"
    content = source.read_bytes()
    assert lockstep(project, "data", "add", "data", "--name", "train").returncode == 0
    # add stored the working file itself: one inode, now read-only.
    assert source.stat().st_nlink == 2 and source.stat().st_mode & 0o777 == 0o444
    assert lockstep(project, "data", "status", "train").stdout.strip().endswith("no changes")
    result = lockstep(project, "data", "checkout", "train", "--to", str(tmp_path / "linked"))
    assert "by hardlink" in result.stdout
    linked = tmp_path / "linked" / "labels.csv"
    assert linked.stat().st_ino == source.stat().st_ino and linked.stat().st_nlink == 3
    assert linked.read_bytes() == content
    # An editor's save replaces the file: the link breaks and the object is untouched.
    replacement = project / "data" / "labels.csv.new"
    replacement.write_text("edited\n")
    replacement.replace(source)
    status = data_json(project, "status", "train")
    assert [m["path"] for m in status["train"]["modified"]] == ["labels.csv"]  # type: ignore[index]
    assert lockstep(project, "fsck").returncode == 0
    assert linked.read_bytes() == content


def test_single_file_dataset(project: Path, tmp_path: Path) -> None:
    assert lockstep(project, "data", "add", "data/labels.csv").returncode == 0
    target = tmp_path / "labels-copy.csv"
    assert lockstep(project, "data", "checkout", "labels.csv", "--to", str(target)).returncode == 0
    assert target.read_bytes() == (project / "data" / "labels.csv").read_bytes()


def test_fsck_names_a_flipped_byte_and_a_verified_checkout_refuses(
    project: Path, tmp_path: Path
) -> None:
    lockstep(project, "data", "add", "data", "--name", "train")
    assert lockstep(project, "fsck").returncode == 0
    digest = blake3.blake3((project / "data" / "labels.csv").read_bytes()).hexdigest()
    obj = project / ".lockstep" / "objects" / "blake3" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    raw = bytearray(obj.read_bytes())
    raw[5] ^= 0xFF
    obj.write_bytes(bytes(raw))
    report = lockstep(project, "fsck")
    assert report.returncode == 1 and f"corrupt: {digest}" in report.stderr
    refused = lockstep(
        project, "data", "checkout", "train", "--to", str(tmp_path / "x"), "--verify"
    )
    assert refused.returncode == 1 and "corrupt" in refused.stderr
    obj.unlink()
    missing = lockstep(project, "fsck")
    assert missing.returncode == 1 and f"missing: {digest}" in missing.stderr


def test_gc_keeps_what_versions_and_runs_still_use(project: Path) -> None:
    lockstep(project, "data", "add", "data", "--name", "train")
    shared = blake3.blake3((project / "data" / "images" / "001.bin").read_bytes()).hexdigest()
    only_v1 = blake3.blake3((project / "data" / "labels.csv").read_bytes()).hexdigest()
    (project / "data" / "labels.csv").write_text("v2 labels\n")
    lockstep(project, "data", "add", "data", "--name", "train")
    (project / "read.py").write_text("print(open('data/images/002.bin', 'rb').read()[:1])\n")
    assert lockstep(project, "run", "--", sys.executable, "read.py").returncode == 0
    run_input = blake3.blake3((project / "data" / "images" / "002.bin").read_bytes()).hexdigest()
    assert lockstep(project, "data", "rm", "train@v1").returncode == 0
    dry = lockstep(project, "gc", "--dry-run")
    assert "would remove" in dry.stdout
    assert lockstep(project, "gc").returncode == 0
    objects = project / ".lockstep" / "objects" / "blake3"

    def present(digest: str) -> bool:
        return (objects / digest[:2] / digest[2:]).exists()

    assert present(shared) and present(run_input)
    assert not present(only_v1)
    assert lockstep(project, "fsck").returncode == 0
    # The run's input is linked to the dataset version that holds it.
    log = data_json(project, "log", "train")
    assert log[0]["runs"][0]["role"] == "input"  # type: ignore[index]


def test_data_use_records_the_version_as_an_input(project: Path) -> None:
    lockstep(project, "data", "add", "data", "--name", "train")
    lockstep(project, "data", "tag", "train@v1", "golden")
    (project / "data" / "labels.csv").write_text("edited after v1\n")
    (project / "job.py").write_text(
        textwrap.dedent("""
        import lockstep, lockstep.data
        with lockstep.start(name="uses-data") as run:
            path = lockstep.data.use("train@golden")
            print(path, (path / "labels.csv").read_text().splitlines()[0])
    """)
    )
    result = subprocess.run(
        [sys.executable, "job.py"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    path, header = result.stdout.split()
    assert ".lockstep/checkouts/train/v1" in path and header == "id,label"
    assert show(project, "uses-data")["tags"]["dataset.train"] == "v1"
    log = data_json(project, "log", "train")
    assert log[0]["runs"] == [{"run": show(project, "uses-data")["id"], "role": "input"}]


def test_sigkill_during_add_leaves_no_partial_object(project: Path) -> None:
    big = project / "big"
    big.mkdir()
    for i in range(3000):
        (big / f"{i:05d}.bin").write_bytes(os.urandom(4096))
    (big / "large.bin").write_bytes(os.urandom(64 << 20))
    env = clean_env()
    process = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "data", "add", "big"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    tmp = project / ".lockstep" / "objects" / "blake3"
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp.exists() and any(tmp.iterdir())):
        time.sleep(0.01)
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert lockstep(project, "fsck").returncode == 0  # every visible object is whole
    again = lockstep(project, "data", "add", "big")
    assert again.returncode == 0, again.stderr
    assert "big@v1: 3001 files" in again.stdout
    assert lockstep(project, "fsck").returncode == 0


def test_full_disk_gives_a_clear_error_and_keeps_nothing_partial(project: Path) -> None:
    """The write path under a file-size limit (EFBIG, handled like ENOSPC)."""
    (project / "huge.bin").write_bytes(os.urandom(4 << 20))
    code = textwrap.dedent("""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        from lockstep.cli.main import main
        sys.argv = ["lockstep", "data", "add", "huge.bin"]
        main()
    """)
    env = clean_env()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "no space left" in result.stderr and "Traceback" not in result.stderr
    leftovers = [
        p
        for p in (project / ".lockstep" / "objects").rglob("*")
        if p.is_file() and (p.name.endswith(".part") or p.parent.name == "tmp")
    ]
    assert leftovers == []
    assert lockstep(project, "fsck").returncode == 0


def test_two_adds_of_the_same_content_at_once_make_one_version(
    tmp_path: Path, backend: Backend
) -> None:
    env = backend.env()
    root = tmp_path / "race"
    (root / "data").mkdir(parents=True)
    for i in range(400):
        (root / "data" / f"{i:03d}.bin").write_bytes(os.urandom(4096))
    assert lockstep(root, "init", env=env).returncode == 0
    for trial in range(3):
        (root / "data" / "trial.txt").write_text(f"trial {trial}\n")
        age_files(root / "data")
        adds = [start_add(root, "d", env) for _ in range(2)]
        outputs = [process.communicate(timeout=120) for process in adds]
        assert all(process.returncode == 0 for process in adds), outputs
        said = sorted("unchanged" in out for out, _ in outputs)
        assert said == [False, True], outputs
        log = lockstep(root, "data", "log", "d", "--json", env=env)
        assert log.returncode == 0, log.stderr
        assert sorted(v["version"] for v in json.loads(log.stdout)) == list(range(1, trial + 2))


def test_gc_racing_an_add_never_deletes_what_the_add_records(tmp_path: Path) -> None:
    root = tmp_path / "race"
    (root / "data").mkdir(parents=True)
    for i in range(6000):
        (root / "data" / f"{i:05d}.bin").write_bytes(os.urandom(512))
    age_files(root / "data")
    assert lockstep(root, "init").returncode == 0
    add = start_add(root, "big")
    collections = 0
    waited = False
    while add.poll() is None:
        gc = lockstep(root, "gc")
        assert gc.returncode == 0, gc.stderr
        waited = waited or "waiting for adds" in gc.stderr
        collections += 1
    out, err = add.communicate()
    assert add.returncode == 0, err
    assert "6000 new objects" in out
    assert collections >= 1 and waited  # a gc really ran while the add held its objects
    assert lockstep(root, "gc").returncode == 0
    fsck = lockstep(root, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # An object gone by other means is noticed by the next add, which stores it again.
    objects = root / ".lockstep" / "objects" / "blake3"
    victim = next(p for p in objects.rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.unlink()
    assert lockstep(root, "fsck").returncode == 1
    again = lockstep(root, "data", "add", "data", "--name", "big")
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    assert lockstep(root, "fsck").returncode == 0


def test_gc_removes_a_killed_adds_partial_writes_at_once(tmp_path: Path) -> None:
    root = tmp_path / "killed"
    (root / "data").mkdir(parents=True)
    (root / "data" / "big.bin").write_bytes(os.urandom(64 << 20))
    age_files(root / "data")
    assert lockstep(root, "init").returncode == 0
    objects = root / ".lockstep" / "objects"
    add = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "data", "add", "data", "--name", "big"],
        cwd=root,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not [
        p
        for p in objects.rglob("*")
        if p.is_file() and (p.name.endswith(".part") or p.parent.name == "tmp")
    ]:
        assert add.poll() is None, "the add ended before it wrote anything"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    add.send_signal(signal.SIGKILL)
    add.wait()
    partial = [p for p in objects.rglob("*") if p.is_file() and p.name != ".lock"]
    assert partial and not any(
        len(p.parent.name) == 2 and not p.name.startswith(".") for p in partial
    )
    gc = lockstep(root, "gc")
    assert gc.returncode == 0, gc.stderr
    assert [p for p in objects.rglob("*") if p.is_file() and p.name != ".lock"] == []


def test_symbolic_links_in_a_dataset_are_named_not_dropped_silently(tmp_path: Path) -> None:
    root = tmp_path / "links"
    (root / "data").mkdir(parents=True)
    (root / "data" / "real.txt").write_text("real\n")
    (root / "elsewhere.txt").write_text("outside\n")
    (root / "data" / "linked.txt").symlink_to(root / "elsewhere.txt")
    age_files(root / "data")
    assert lockstep(root, "init").returncode == 0
    added = lockstep(root, "data", "add", "data", "--name", "d")
    assert added.returncode == 0, added.stderr
    assert "warning: 1 symbolic links under data are not versioned" in added.stderr
    assert "linked.txt" in added.stderr
    assert "d@v1: 1 files" in added.stdout

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.errors import ObjectMissing, StoreError
from lockstep.objects.store import LocalObjectStore, SourceFile


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=5000))
def test_put_get_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = LocalObjectStore(tmp_path_factory.mktemp("objects"))
    stored = store.put_bytes(data)
    assert stored.digest == blake3.blake3(data).hexdigest()
    assert store.read_bytes(stored.digest) == data


def test_layout_names_the_algorithm_and_objects_are_read_only(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    source = tmp_path / "file.bin"
    source.write_bytes(os.urandom(3 << 20))
    stored = store.put_file(source)
    path = tmp_path / "objects" / "blake3" / stored.digest[:2] / stored.digest[2:]
    assert path.is_file() and stored.size == 3 << 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []
    assert list(store.iter_digests()) == [stored.digest]


def test_concurrent_writers_of_the_same_content(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(1 << 20)
    digests: list[str] = []
    threads = [
        threading.Thread(target=lambda: digests.append(store.put_bytes(data).digest))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(digests)) == 1
    assert store.read_bytes(digests[0]) == data
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_missing_object_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing, match="not in the object store"):
        LocalObjectStore(tmp_path).read_bytes("ab" * 32)


def scanned(path: Path) -> SourceFile:
    info = path.stat()
    return SourceFile(str(path), info.st_dev, info.st_size, info.st_mtime_ns, info.st_mode & 0o777)


def test_a_hardlinked_add_shares_the_inode_and_protects_it(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.prepare()
    source = tmp_path / "small.bin"
    data = os.urandom(4096)
    source.write_bytes(data)
    digest = blake3.blake3(data).hexdigest()
    assert store.put_small(data, digest, scanned(source), ("hardlink", "copy"))
    assert os.path.samefile(store.path(digest), source)
    assert stat.S_IMODE(source.stat().st_mode) == 0o444
    assert not store.put_small(data, digest, scanned(source), ("hardlink", "copy"))  # known


def test_a_file_changed_after_hashing_is_stored_as_read_not_as_it_is_now(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.prepare()
    source = tmp_path / "small.bin"
    source.write_bytes(b"as hashed")
    before = scanned(source)
    digest = blake3.blake3(b"as hashed").hexdigest()
    source.write_bytes(b"rewritten since")  # a new size: the scan no longer matches
    assert store.put_small(b"as hashed", digest, before, ("hardlink", "copy"))
    assert store.read_bytes(digest) == b"as hashed"
    assert not os.path.samefile(store.path(digest), source)
    assert stat.S_IMODE(source.stat().st_mode) == before.mode  # its mode is given back
    # A large file cannot fall back on bytes in memory: it is refused.
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100)
    stale = scanned(big)
    big.write_bytes(b"y" * 101)
    with pytest.raises(StoreError, match="changed while it was being stored"):
        store.put_hashed_file(stale, blake3.blake3(b"x" * 100).hexdigest(), ("copy",))
    assert list(store.iter_digests()) == [digest]
    assert store.partial_writes() == []


def test_a_filesystem_without_reflinks_falls_back_to_a_copy(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.prepare()
    files = [tmp_path / f"f{i}" for i in range(3)]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * 10_000)
    if _reflinks_work(tmp_path):
        pytest.skip("this filesystem clones files: there is no fallback to see")
    for path in files:
        digest = blake3.blake3(path.read_bytes()).hexdigest()
        assert store.put_hashed_file(scanned(path), digest, ("reflink", "copy"))
        assert store.read_bytes(digest) == path.read_bytes()
        stored = store.path(digest)
        shares = os.path.samefile(stored, path)
        assert not shares and stat.S_IMODE(stored.stat().st_mode) == 0o444
    # The filesystem's refusal was learned once, not retried for every file.
    assert ("reflink", os.stat(tmp_path).st_dev) in store._unsupported


@pytest.mark.parametrize("strategy", ["copy", "hardlink", "reflink"])
def test_link_replaces_what_is_at_the_target_and_never_writes_through_it(
    tmp_path: Path, strategy: str
) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    digest = store.put_bytes(b"the object").digest
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    target = tmp_path / "work" / "file.txt"
    target.parent.mkdir()
    os.symlink(victim, target)  # a scan skips symlinks: the caller believes nothing is there
    how = store.link(digest, target, (strategy, "copy"), replace=False)
    # Exactly the strategy this filesystem supports: a hardlink always works here (one
    # filesystem); a reflink where the filesystem can, else the copy it falls back to.
    expected = strategy
    if strategy == "reflink" and not _reflinks_work(tmp_path):
        expected = "copy"
    assert how == expected
    assert os.path.samefile(target, store.path(digest)) is (how == "hardlink")
    assert not target.is_symlink() and target.read_bytes() == b"the object"
    assert victim.read_bytes() == b"keep me"
    other = store.put_bytes(b"another object").digest
    store.link(other, target, (strategy, "copy"))  # replace: a file the caller saw
    assert target.read_bytes() == b"another object"
    assert store.read_bytes(digest) == b"the object"  # a hardlinked object is untouched


def test_a_failed_copy_leaves_nothing_at_the_target(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    digest = store.put_bytes(b"x" * 4096).digest
    target = tmp_path / "missing-dir" / "file"
    with pytest.raises(FileNotFoundError):
        store.link(digest, target, ("copy",), replace=False)
    assert not target.exists()


def _reflinks_work(directory: Path) -> bool:
    """Whether this filesystem clones files (XFS, Btrfs), asked of cp itself."""
    import subprocess

    source, clone = directory / ".probe-source", directory / ".probe-clone"
    source.write_bytes(b"probe")
    done = subprocess.run(
        ["cp", "--reflink=always", str(source), str(clone)], capture_output=True, check=False
    )
    source.unlink()
    clone.unlink(missing_ok=True)
    return done.returncode == 0

"""The remote contract, against a directory and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from lockstep.errors import ObjectCorrupt
from lockstep.objects.remote import DirectoryRemote, Remote, open_remote
from lockstep.objects.store import LocalObjectStore


@pytest.fixture(params=["directory", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    if request.param == "directory":
        yield open_remote(str(tmp_path / "remote"))
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    yield open_remote(f"s3://{bucket}/team/project", endpoint)


def test_objects_round_trip_and_listing(remote: Remote, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    digests = []
    for size in (0, 10, 3 << 20):
        source = tmp_path / f"file-{size}"
        source.write_bytes(os.urandom(size))
        digests.append(store.put_file(source).digest)
    assert remote.list_objects() == set()
    for digest in digests:
        remote.upload(digest, store.path(digest))
    assert remote.list_objects() == set(digests)
    other = LocalObjectStore(tmp_path / "other")
    for digest in digests:
        other.put_fetched(digest, lambda tmp, d=digest: remote.download(d, Path(tmp)))
        assert other.read_bytes(digest) == store.read_bytes(digest)


def test_metadata_documents(remote: Remote) -> None:
    remote.write_meta("runs/a.json", b'{"id": "a"}')
    remote.write_meta("runs/b.json", b'{"id": "b"}')
    remote.write_meta("datasets/train.json", b"{}")
    assert remote.list_meta("runs") == ["runs/a.json", "runs/b.json"]
    assert remote.read_meta("runs/b.json") == b'{"id": "b"}'
    remote.write_meta("runs/a.json", b'{"id": "a", "v": 2}')
    assert remote.read_meta("runs/a.json") == b'{"id": "a", "v": 2}'


def test_a_corrupt_download_never_becomes_an_object(tmp_path: Path) -> None:
    remote = DirectoryRemote(str(tmp_path / "remote"))
    store = LocalObjectStore(tmp_path / "objects")
    source = tmp_path / "f"
    source.write_bytes(b"honest bytes")
    digest = blake3.blake3(b"honest bytes").hexdigest()
    remote.upload(digest, source)
    stored = tmp_path / "remote" / "objects" / "blake3" / digest[:2] / digest[2:]
    stored.write_bytes(b"tampered bytes")
    with pytest.raises(ObjectCorrupt):
        store.put_fetched(digest, lambda tmp: remote.download(digest, Path(tmp)))
    assert not store.has(digest)

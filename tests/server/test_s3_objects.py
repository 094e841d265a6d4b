"""A server keeping objects on a real S3 server (SeaweedFS): clients transfer through
presigned URLs, uploads resume by part and are checked before they become visible."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import S3_ENV
from tests.serverproc import served
from tests.tracking.test_launcher import lockstep

OBJECTS = "/api/v1/projects/default/objects"


@pytest.fixture
def s3_server(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    home = tmp_path / "served"
    home.mkdir()
    with served(
        home, "--objects", f"s3://{s3_bucket}/team", "--endpoint-url", s3_endpoint, env=S3_ENV
    ) as url:
        yield url, s3_bucket, home


def keys(bucket: str, endpoint: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    listed = client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def digest_of(data: bytes) -> str:
    from blake3 import blake3

    return str(blake3(data).hexdigest())


def access_log(home: Path) -> list[dict[str, object]]:
    lines = next(home.glob("server-*.log")).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_transfers_go_straight_to_s3_and_resume_by_part(
    s3_server: tuple[str, str, Path], s3_endpoint: str, tmp_path: Path
) -> None:
    url, bucket, home = s3_server
    data = os.urandom((9 << 20) + 12345)  # two parts
    digest = digest_of(data)
    plan = httpx.get(f"{url}{OBJECTS}/{digest}/upload", params={"size": len(data)}).json()
    direct = plan["direct"]
    assert [p["number"] for p in direct["parts"]] == [1, 2]
    part = direct["part_size"]
    # Part 1 arrives, then the client "dies".
    first = httpx.put(direct["parts"][0]["url"], content=data[:part])
    assert first.status_code == 200
    again = httpx.get(f"{url}{OBJECTS}/{digest}/upload", params={"size": len(data)}).json()
    assert [p["number"] for p in again["direct"]["parts"]] == [2]
    assert [n for n, _ in again["direct"]["done"]] == [1]
    # lockstep's client sends only part 2: its own first part is garbage, and the object
    # still arrives whole and right.
    from lockstep.remote.meta import HttpMetaStore

    source = tmp_path / "blob"
    source.write_bytes(b"\0" * part + data[part:])
    client = HttpMetaStore(url)
    client.objects.upload(digest, source)
    assert client.objects.missing([digest]) == []
    assert f"team/objects/blake3/{digest[:2]}/{digest[2:]}" in keys(bucket, s3_endpoint)
    back = tmp_path / "back"
    client.objects.download(digest, back)
    assert back.read_bytes() == data
    redirected = httpx.get(f"{url}{OBJECTS}/{digest}")
    assert redirected.status_code == 307 and "Signature" in redirected.headers["location"]
    # Bytes that are not the digest's are never shown.
    wrong = os.urandom(1000)
    claimed = digest_of(b"something else")
    plan = httpx.get(f"{url}{OBJECTS}/{claimed}/upload", params={"size": 1000}).json()["direct"]
    etag = httpx.put(plan["parts"][0]["url"], content=wrong).headers["etag"]
    refused = httpx.post(
        f"{url}{OBJECTS}/{claimed}/complete",
        json={"upload_id": plan["upload_id"], "parts": [[1, etag]]},
    )
    assert refused.status_code == 400 and "nothing was stored" in refused.json()["error"]
    assert client.objects.missing([claimed]) == [claimed]
    assert not any(claimed[2:] in k for k in keys(bucket, s3_endpoint))
    client.close()
    # The server never carried an object's bytes.
    logged = access_log(home)
    assert not [e for e in logged if e["method"] == "PUT"]
    downloads = [e for e in logged if e["route"] == "/api/v1/projects/{project}/objects/{digest}"]
    assert downloads and all(e["status"] == 307 and int(e["bytes"]) < 4096 for e in downloads)


TRAIN = """\
import sys
rows = open("data.csv").read()
open("model.bin", "wb").write(rows.encode() * 1000)
print("accuracy", len(rows))
"""


def test_a_run_with_objects_on_s3_verifies_from_a_fresh_directory(
    s3_server: tuple[str, str, Path], s3_endpoint: str, tmp_path: Path
) -> None:
    url, bucket, home = s3_server
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    (project / "data.csv").write_text("1,2,3\n")
    env = {"LOCKSTEP_TRACKING_URI": url, **S3_ENV}
    ran = lockstep(project, "run", "--name", "fit", "--", sys.executable, "train.py", env=env)
    assert ran.returncode == 0, ran.stderr
    stored = keys(bucket, s3_endpoint)
    assert stored and all(k.startswith("team/objects/blake3/") for k in stored), stored
    assert not (home / ".lockstep" / "objects" / "blake3").exists()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    verified = lockstep(fresh, "verify", "fit", env={"LOCKSTEP_TRACKING_URI": url})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "IDENTICAL" in verified.stdout and "model.bin" in verified.stdout


def test_push_to_and_pull_from_a_server_on_s3(
    s3_server: tuple[str, str, Path], s3_endpoint: str, tmp_path: Path
) -> None:
    url, bucket, _home = s3_server
    local = tmp_path / "local"
    (local / "data").mkdir(parents=True)
    (local / "data" / "rows.csv").write_text("1,2,3\n")
    for args in (["data", "add", "data"], ["remote", "add", "team", url], ["push"]):
        done = lockstep(local, *args, env=S3_ENV)
        assert done.returncode == 0, (args, done.stderr)
    assert any(k.startswith("team/objects/blake3/") for k in keys(bucket, s3_endpoint))
    other = tmp_path / "other"
    other.mkdir()
    for args in (["remote", "add", "team", url], ["pull"], ["data", "checkout", "data@v1"]):
        done = lockstep(other, *args)
        assert done.returncode == 0, (args, done.stderr)
    assert (other / "data" / "rows.csv").read_text() == "1,2,3\n"

"""push / pull between stores through a real S3 server: a fresh directory sees everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import S3_ENV, clean_env
from tests.tracking.test_launcher import lockstep


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = lockstep(project, *args, env=S3_ENV)
    return result


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    project = tmp_path / "origin"
    (project / "data").mkdir(parents=True)
    for i in range(200):
        (project / "data" / f"{i:03d}.bin").write_bytes(os.urandom(2048))
    (project / "job.py").write_text(
        "import lockstep\nwith lockstep.start() as run:\n"
        "    data = open('data/007.bin', 'rb').read()\n"
        "    run.log({'first_byte': data[0]})\n"
        "open('result.txt', 'w').write(str(len(data)))\n"
    )
    assert cli(project, "init").returncode == 0
    assert cli(project, "data", "add", "data", "--name", "train").returncode == 0
    assert (
        cli(
            project, "run", "--name", "job", "--seed", "3", "--", sys.executable, "job.py"
        ).returncode
        == 0
    )
    return project


def test_push_then_pull_into_a_fresh_directory(
    origin: Path, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    url = f"s3://{s3_bucket}/shared"
    assert cli(origin, "remote", "add", "team", url, "--endpoint-url", s3_endpoint).returncode == 0
    pushed = cli(origin, "push")
    assert pushed.returncode == 0, pushed.stderr
    again = cli(origin, "push")
    assert "pushed 0 objects" in again.stdout
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert cli(fresh, "init").returncode == 0
    assert cli(fresh, "remote", "add", "team", url, "--endpoint-url", s3_endpoint).returncode == 0
    pulled = cli(fresh, "pull")
    assert pulled.returncode == 0, pulled.stderr
    runs = json.loads(cli(fresh, "runs", "--json").stdout)
    assert [r["name"] for r in runs] == ["job"]
    job = json.loads(cli(fresh, "show", "job", "--json").stdout)
    assert job["metrics"]["first_byte"] == (origin / "data" / "007.bin").read_bytes()[0]
    assert job["seed"]["value"] == 3
    history = json.loads(cli(fresh, "metrics", "job", "first_byte", "--json").stdout)
    assert history["steps"] == [0]
    checkout = cli(fresh, "data", "checkout", "train@v1", "--to", str(fresh / "data"), "--verify")
    assert checkout.returncode == 0, checkout.stderr
    for source in (origin / "data").iterdir():
        assert (fresh / "data" / source.name).read_bytes() == source.read_bytes()
    log = json.loads(cli(fresh, "data", "log", "train", "--json").stdout)
    assert log[0]["runs"] == [{"run": job["id"], "role": "input"}]
    assert cli(fresh, "fsck").returncode == 0
    # AWS credentials never reach the store.
    for path in (fresh / ".lockstep").rglob("*"):
        if path.is_file():
            assert S3_ENV["AWS_SECRET_ACCESS_KEY"].encode() not in path.read_bytes()


def test_interrupted_push_completes_when_run_again(
    origin: Path, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    url = f"s3://{s3_bucket}/interrupted"
    # Enough objects that a push takes a while: the kill below lands in the middle of it.
    (origin / "many").mkdir()
    for i in range(3000):
        (origin / "many" / f"{i:04d}.bin").write_bytes(os.urandom(256))
    assert cli(origin, "data", "add", "many", "--name", "many").returncode == 0
    total = sum(1 for p in (origin / ".lockstep" / "objects" / "blake3").rglob("*") if p.is_file())
    cli(origin, "remote", "add", "team", url, "--endpoint-url", s3_endpoint)
    env = clean_env(**S3_ENV)
    process = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "push"],
        cwd=origin,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    deadline = time.time() + 60
    while time.time() < deadline:
        listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="interrupted/objects/")
        if listed.get("KeyCount", 0) >= 5:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL  # killed, not finished

    def on_remote(prefix: str) -> int:
        paginator = client.get_paginator("list_objects_v2")
        return sum(
            page.get("KeyCount", 0)
            for page in paginator.paginate(Bucket=s3_bucket, Prefix=f"interrupted/{prefix}")
        )

    sent_before = on_remote("objects/")
    assert 5 <= sent_before < total, (sent_before, total)  # the first push was cut short
    assert on_remote("meta/") == 0  # documents go last: none names a missing object
    done = cli(origin, "push")
    assert done.returncode == 0, done.stderr
    # "pushed N objects (M already there) ...": the rest, and only the rest.
    sent_now = int(done.stdout.split("pushed ", 1)[1].split(" ", 1)[0])
    already = int(done.stdout.split("(", 1)[1].split(" ", 1)[0])
    # An upload in flight at the kill may have landed after the count above.
    assert already >= sent_before and sent_now > 0
    assert on_remote("objects/") == sent_now + already >= total - 5
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    cli(fresh, "init")
    cli(fresh, "remote", "add", "team", url, "--endpoint-url", s3_endpoint)
    assert cli(fresh, "pull").returncode == 0
    assert cli(fresh, "data", "checkout", "train", "--to", str(fresh / "d")).returncode == 0
    assert sorted(p.name for p in (fresh / "d").iterdir()) == sorted(
        p.name for p in (origin / "data").iterdir()
    )


def test_rerun_restores_an_input_from_the_remote(origin: Path, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    assert cli(origin, "remote", "add", "backup", str(remote_dir)).returncode == 0
    assert cli(origin, "push").returncode == 0
    # Lose the local copy of the job's input object; the rerun fetches it back.
    digest = json.loads(cli(origin, "show", "job", "--json").stdout)["inputs"][0]["digest"]
    obj = origin / ".lockstep" / "objects" / "blake3" / digest[:2] / digest[2:]
    obj.unlink()
    result = cli(origin, "verify", "job", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "IDENTICAL"

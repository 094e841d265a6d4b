"""A hostile remote: documents crafted to write, delete or read outside the project are refused
whole, with one line naming the field, and nothing outside the project is touched."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from tests.tracking.test_launcher import lockstep

JOB = "data = open('data/a.txt').read()\nprint(len(data))\nopen('out.txt', 'w').write(data)\n"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A directory remote holding one dataset and one run, pushed by an honest store."""
    origin = tmp_path / "origin"
    (origin / "data" / "sub").mkdir(parents=True)
    (origin / "data" / "a.txt").write_text("alpha\n")
    (origin / "data" / "sub" / "b.txt").write_text("beta\n")
    (origin / "job.py").write_text(JOB)
    shared = tmp_path / "remote"
    for args in (
        ("init",),
        ("data", "add", "data", "--name", "train"),
        ("run", "--name", "job", "--", sys.executable, "job.py"),
        ("remote", "add", "team", str(shared)),
        ("push",),
    ):
        result = lockstep(origin, *args)
        assert result.returncode == 0, result.stderr
    return shared


@pytest.fixture
def victim(tmp_path: Path, remote: Path) -> Path:
    project = tmp_path / "victim" / "project"
    project.mkdir(parents=True)
    assert lockstep(project, "init").returncode == 0
    assert lockstep(project, "remote", "add", "team", str(remote)).returncode == 0
    return project


def put_object(remote: Path, data: bytes) -> str:
    digest = blake3(data).hexdigest()
    target = remote / "objects" / "blake3" / digest[:2] / digest[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return digest


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def dataset_doc(remote: Path) -> Path:
    return remote / "meta" / "datasets" / "train.json"


def run_doc(remote: Path) -> Path:
    (found,) = (remote / "meta" / "runs").glob("*.json")
    return found


def with_manifest_files(remote: Path, files: list[list[Any]]) -> None:
    """Point the dataset's version at a new manifest object listing files."""
    manifest = json.dumps({"schema_version": 1, "kind": "dir", "files": files}).encode()
    digest = put_object(remote, manifest)
    edit(dataset_doc(remote), lambda doc: doc["versions"][0].update(manifest=digest))


def honest_manifest(remote: Path) -> list[list[Any]]:
    digest = json.loads(dataset_doc(remote).read_text())["versions"][0]["manifest"]
    path = remote / "objects" / "blake3" / digest[:2] / digest[2:]
    return list(json.loads(path.read_bytes())["files"])


def attack_manifest_path(remote: Path, outside: Path) -> str:
    files = honest_manifest(remote)
    files[0][0] = "../../../" + outside.name
    with_manifest_files(remote, files)
    return "files[0].path"


def attack_source_path(remote: Path, outside: Path) -> str:
    edit(dataset_doc(remote), lambda doc: doc["versions"][0].update(source_path=str(outside)))
    return "versions[0].source_path"


def attack_digest(remote: Path, outside: Path) -> str:
    files = honest_manifest(remote)
    files[0][3] = "../../../../../" + str(outside).lstrip("/")
    with_manifest_files(remote, files)
    return "files[0].digest"


def attack_dataset_name(remote: Path, outside: Path) -> str:
    edit(dataset_doc(remote), lambda doc: doc.update(name="../../x"))
    return "name"


def attack_artifact_path(remote: Path, outside: Path) -> str:
    edit(run_doc(remote), lambda doc: doc["artifacts"][0].update(path=str(outside)))
    return "artifacts[0].path"


def attack_run_id(remote: Path, outside: Path) -> str:
    edit(run_doc(remote), lambda doc: doc.update(id="../../x"))
    return "id"


def attack_code_file(remote: Path, outside: Path) -> str:
    def change(doc: dict[str, Any]) -> None:
        doc["sections"]["code"]["files"][0]["path"] = "../../" + outside.name

    edit(run_doc(remote), change)
    return "sections.code.files[0].path"


def attack_garbage(remote: Path, outside: Path) -> str:
    run_doc(remote).write_bytes(b"\x00\xffnot json")
    return "the document"


@pytest.mark.parametrize(
    "attack",
    [
        attack_manifest_path,
        attack_source_path,
        attack_digest,
        attack_dataset_name,
        attack_artifact_path,
        attack_run_id,
        attack_code_file,
        attack_garbage,
    ],
)
def test_a_hostile_document_is_refused_whole_and_nothing_outside_is_touched(
    remote: Path, victim: Path, tmp_path: Path, attack: Callable[[Path, Path], str]
) -> None:
    outside = tmp_path / "victim" / "secret.txt"  # beside the project, not in it
    outside.write_text("the victim's own file\n")
    field = attack(remote, outside)
    before = sorted(p.relative_to(tmp_path / "victim") for p in (tmp_path / "victim").rglob("*"))

    pulled = lockstep(victim, "pull")
    assert pulled.returncode == 1, pulled.stdout + pulled.stderr
    errors = [line for line in pulled.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: refused "), pulled.stderr
    assert f": {field} must be" in errors[0]
    assert "Traceback" not in pulled.stderr
    assert outside.read_text() == "the victim's own file\n"
    # Nothing imported: no dataset, no run.
    assert json.loads(lockstep(victim, "data", "ls", "--json").stdout) == []
    assert json.loads(lockstep(victim, "runs", "--json").stdout) == []
    # Nothing written anywhere outside the victim's store.
    after = sorted(p.relative_to(tmp_path / "victim") for p in (tmp_path / "victim").rglob("*"))
    outside_store = [p for p in after if ".lockstep" not in p.parts]
    assert outside_store == [p for p in before if ".lockstep" not in p.parts]


def test_an_honest_pull_still_works_and_checks_out_inside_the_project(
    remote: Path, victim: Path
) -> None:
    pulled = lockstep(victim, "pull")
    assert pulled.returncode == 0, pulled.stderr
    checked = lockstep(victim, "data", "checkout", "train")
    assert checked.returncode == 0, checked.stderr
    assert (victim / "data" / "a.txt").read_text() == "alpha\n"


def test_a_pulled_run_from_another_host_asks_before_running_and_plants_no_setuid_file(
    remote: Path, victim: Path, tmp_path: Path
) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["host"] = "someone-elses-laptop"
        for entry in doc["sections"]["code"]["files"]:
            entry["mode"] = "0o6755"

    edit(run_doc(remote), change)
    assert lockstep(victim, "pull").returncode == 0
    refused = lockstep(victim, "rerun", "job")
    assert refused.returncode == 2
    assert "recorded on host someone-elses-laptop" in refused.stderr
    assert "job.py" in refused.stderr and "--yes" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for command in (("verify", "job"), ("explain", "job", "job")):
        assert lockstep(victim, *command).returncode == 2
    workdir = tmp_path / "rebuilt"
    ran = lockstep(victim, "rerun", "job", "--yes", "--keep", "--workdir", str(workdir))
    assert ran.returncode == 0, ran.stderr
    restored = workdir / "job.py"
    mode = stat.S_IMODE(os.stat(restored).st_mode)
    assert mode == 0o755, oct(mode)  # the executable bit only: no setuid, setgid or sticky


@pytest.mark.parametrize("name", ["a/b", "../../x", "a@v1", ".hidden", "with space", ""])
def test_dataset_names_outside_the_character_set_are_refused(tmp_path: Path, name: str) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.txt").write_text("x\n")
    assert lockstep(project, "init").returncode == 0
    added = lockstep(project, "data", "add", "data", "--name", name)
    assert added.returncode == 2, added.stdout + added.stderr
    assert added.stderr.startswith("error: dataset name") and "A-Z a-z 0-9" in added.stderr
    assert len(added.stderr.strip().splitlines()) == 1
    assert json.loads(lockstep(project, "data", "ls", "--json").stdout) == []
    store = lockstep(project, "data", "add", ".lockstep")
    assert store.returncode == 2 and "lockstep's own store" in store.stderr


def test_checkout_never_writes_through_a_linked_subdirectory(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data" / "sub").mkdir(parents=True)
    (project / "data" / "sub" / "f.txt").write_text("v1\n")
    assert lockstep(project, "init").returncode == 0
    assert lockstep(project, "data", "add", "data", "--name", "d").returncode == 0
    (project / "data" / "sub" / "f.txt").write_text("v2\n")
    assert lockstep(project, "data", "add", "data", "--name", "d").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f.txt").write_text("not the dataset's\n")
    (project / "data" / "sub" / "f.txt").unlink()
    (project / "data" / "sub").rmdir()
    (project / "data" / "sub").symlink_to(elsewhere)
    checked = lockstep(project, "data", "checkout", "d@v1")
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "symbolic link" in checked.stderr
    assert (elsewhere / "f.txt").read_text() == "not the dataset's\n"


def test_a_hostile_run_document_on_s3_is_refused(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    import boto3

    from tests.conftest import S3_ENV

    origin = tmp_path / "origin"
    (origin / "data").mkdir(parents=True)
    (origin / "data" / "a.txt").write_text("alpha\n")
    (origin / "job.py").write_text(JOB)
    url = f"s3://{s3_bucket}/team"
    for args in (
        ("init",),
        ("run", "--name", "job", "--", sys.executable, "job.py"),
        ("remote", "add", "team", url, "--endpoint-url", s3_endpoint),
        ("push",),
    ):
        assert lockstep(origin, *args, env=S3_ENV).returncode == 0
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    (key,) = [
        item["Key"]
        for item in client.list_objects_v2(Bucket=s3_bucket, Prefix="team/meta/runs/")["Contents"]
    ]
    doc = json.loads(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    doc["artifacts"][0]["path"] = "../../../../tmp/planted"
    client.put_object(Bucket=s3_bucket, Key=key, Body=json.dumps(doc).encode())
    victim = tmp_path / "victim"
    victim.mkdir()
    assert lockstep(victim, "init").returncode == 0
    assert (
        lockstep(
            victim, "remote", "add", "team", url, "--endpoint-url", s3_endpoint, env=S3_ENV
        ).returncode
        == 0
    )
    pulled = lockstep(victim, "pull", env=S3_ENV)
    assert pulled.returncode == 1
    assert "refused runs/" in pulled.stderr and "artifacts[0].path must be" in pulled.stderr
    assert json.loads(lockstep(victim, "runs", "--json").stdout) == []


@pytest.mark.parametrize("name", ["../up", "a/b", "with space", "x@y"])
def test_remote_names_outside_the_character_set_are_refused(tmp_path: Path, name: str) -> None:
    assert lockstep(tmp_path, "init").returncode == 0
    added = lockstep(tmp_path, "remote", "add", name, str(tmp_path / "r"))
    assert added.returncode == 2 and added.stderr.startswith("error: remote name")
    config = tmp_path / ".lockstep" / "config.toml"
    assert not config.exists() or name not in config.read_text()


def test_s3_failures_are_one_line_saying_what_to_do(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    import socket

    from tests.conftest import S3_ENV

    (tmp_path / "f.txt").write_text("x\n")
    assert lockstep(tmp_path, "init").returncode == 0
    assert lockstep(tmp_path, "data", "add", "f.txt", "--name", "f").returncode == 0
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    cases: list[tuple[str, str, str, dict[str, str], str]] = [
        ("down", f"s3://{s3_bucket}/x", dead, S3_ENV, "cannot reach remote"),
        (
            "nobucket",
            "s3://no-such-bucket-lockstep/x",
            s3_endpoint,
            S3_ENV,
            "bucket 'no-such-bucket-lockstep' of remote",
        ),
        (
            "nocreds",
            f"s3://{s3_bucket}/x",
            s3_endpoint,
            {
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_CONFIG_FILE": str(tmp_path / "none"),
            },
            "no S3 credentials",
        ),
    ]
    for name, url, endpoint, env, words in cases:
        assert (
            lockstep(tmp_path, "remote", "add", name, url, "--endpoint-url", endpoint).returncode
            == 0
        )
        pushed = lockstep(
            tmp_path,
            "push",
            name,
            env=env,
            drop=tuple(
                k
                for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")
                if k not in env
            ),
            timeout=120,
        )
        assert pushed.returncode == 1, (name, pushed.stdout, pushed.stderr)
        errors = [line for line in pushed.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and words in errors[0], (name, pushed.stderr)
        assert "unexpected" not in pushed.stderr and "Traceback" not in pushed.stderr

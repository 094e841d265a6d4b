"""Objects through a real server: verified, resumable uploads, ranged downloads, and runs
that another directory reruns from what the server holds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

from tests.serverproc import RUNS
from tests.tracking.test_launcher import lockstep

OBJECTS = "/api/v1/projects/default/objects"


def digest_of(data: bytes) -> str:
    from blake3 import blake3

    return str(blake3(data).hexdigest())


def test_uploads_are_checked_resumable_and_downloads_ranged(server: str, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    digest = digest_of(data)
    size = len(data)
    half = size // 2
    assert httpx.post(f"{server}{OBJECTS}/missing", json={"digests": [digest]}).json() == {
        "missing": [digest]
    }
    # Bytes that do not hash to the digest are refused and nothing is stored.
    wrong = httpx.put(f"{server}{OBJECTS}/{digest}", content=data[:-1] + b"x")
    assert wrong.status_code == 400 and "nothing was stored" in wrong.json()["error"]
    assert httpx.get(f"{server}{OBJECTS}/{digest}").status_code == 404
    # The first half arrives, then the connection "breaks".
    first = httpx.put(
        f"{server}{OBJECTS}/{digest}",
        content=data[:half],
        headers={"content-range": f"bytes 0-{size - 1}/{size}"},
    )
    assert first.status_code == 202 and first.json()["received"] == half
    assert httpx.get(f"{server}{OBJECTS}/{digest}/upload").json() == {
        "stored": False,
        "received": half,
    }
    # Starting again elsewhere than where it stopped is refused with where to go on.
    skipped = httpx.put(
        f"{server}{OBJECTS}/{digest}",
        content=data[half + 10 :],
        headers={"content-range": f"bytes {half + 10}-{size - 1}/{size}"},
    )
    assert skipped.status_code == 409 and skipped.json()["received"] == half
    # lockstep's client resumes from the server's half: the proof is that its own first
    # half is garbage and the object still arrives whole and correct.
    from lockstep.remote.meta import HttpMetaStore

    source = tmp_path / "blob"
    source.write_bytes(b"\0" * half + data[half:])
    client = HttpMetaStore(server)
    client.objects.upload(digest, source)
    assert client.objects.missing([digest]) == []
    whole = httpx.get(f"{server}{OBJECTS}/{digest}")
    assert whole.status_code == 200 and whole.content == data
    ranged = httpx.get(f"{server}{OBJECTS}/{digest}", headers={"range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == data[100:200]
    target = tmp_path / "back"
    client.objects.download(digest, target)
    assert target.read_bytes() == data
    client.close()
    # Names that cannot be digests are absent, never paths.
    for name in ("..%2F..%2Fetc%2Fpasswd", "ABC", "0" * 63):
        assert httpx.get(f"{server}{OBJECTS}/{name}").status_code == 404
    refused = httpx.post(f"{server}{OBJECTS}/missing", json={"digests": ["../x"]})
    assert refused.status_code == 400


TRAIN = """\
import json, random, sys
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
rows = open("data.csv").read().split()
random.seed(seed)
acc = sum(int(r) for r in rows) / (100 * len(rows)) + random.random() / 100
open("model.bin", "wb").write(bytes(range(256)) * 64)
print(f"accuracy {acc:.6f}")
json.dump({"accuracy": round(acc, 6)}, open("metrics.json", "w"))
"""


def test_a_run_against_the_server_is_verified_from_a_fresh_directory(
    server: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    (project / "data.csv").write_text("\n".join(str(i) for i in range(50)))
    env = {"LOCKSTEP_TRACKING_URI": server}
    for name, seed in (("first", "1"), ("second", "2")):
        ran = lockstep(
            project, "run", "--name", name, "--", sys.executable, "train.py", seed, env=env
        )
        assert ran.returncode == 0, ran.stderr
    # The objects the runs recorded (code, data, outputs) are on the server now.
    from lockstep.core.records import digests_named_in

    run_id = httpx.get(f"{server}{RUNS}/resolve", params={"ref": "first"}).json()["id"]
    shown = httpx.get(f"{server}{RUNS}/{run_id}").json()

    named = digests_named_in(shown["sections"]) | {a["digest"] for a in shown["artifacts"]}
    assert named
    held = httpx.post(f"{server}{OBJECTS}/missing", json={"digests": sorted(named)}).json()
    local = project / ".lockstep" / "objects"
    assert [d for d in held["missing"] if (local / "blake3" / d[:2] / d[2:]).exists()] == []

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    verified = lockstep(fresh, "verify", "first", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "IDENTICAL" in verified.stdout
    differs = lockstep(fresh, "diff", "first", "second", env=env)
    assert differs.returncode == 0, differs.stderr
    assert "train.py {+2+}" in differs.stdout and "accuracy" in differs.stdout, differs.stdout
    explained = lockstep(fresh, "explain", "first", "second", "--json", env=env)
    assert explained.returncode == 0, explained.stdout + explained.stderr
    found = json.loads(explained.stdout)
    assert "bitwise identical" in verified.stdout and "model.bin" in verified.stdout
    [entry] = httpx.get(f"{server}{RUNS}/{run_id}/verifications").json()["verifications"]
    assert entry["verdict"] == "IDENTICAL", entry
    assert found["conclusion"].startswith("params: command"), found
    assert not (fresh / ".lockstep" / "lockstep.db").exists()


def test_objects_go_to_the_directory_given(tmp_path: Path) -> None:
    from tests.serverproc import served

    home, elsewhere = tmp_path / "served", tmp_path / "objects-disk"
    home.mkdir()
    with served(home, "--objects", str(elsewhere)) as url:
        data = b"kept elsewhere"
        digest = digest_of(data)
        assert httpx.put(f"{url}{OBJECTS}/{digest}", content=data).status_code == 201
        assert httpx.get(f"{url}{OBJECTS}/{digest}").content == data
    assert (elsewhere / "blake3" / digest[:2] / digest[2:]).read_bytes() == data
    assert not (home / ".lockstep" / "objects" / "blake3").exists()

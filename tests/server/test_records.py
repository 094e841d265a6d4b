"""Datasets, models and lineage through a real server, push and pull with it, and hostile
records calls."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx

from tests.tracking.test_launcher import lockstep

RECORDS = "/api/v1/projects/default/records"


TRAIN = """\
rows = open("data/a.csv").read()
open("model.bin", "w").write(rows * 10)
print("accuracy 0.5")
"""


def register(where: Path, alias: str, env: dict[str, str]) -> object:
    """The run fit's model.bin as model clf, with an alias."""
    args = ["models", "register", "clf", "--run", "fit", "--path", "model.bin"]
    return lockstep(where, *args, "--alias", alias, env=env)


def ok(result: object) -> str:
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]
    return str(result.stdout)  # type: ignore[attr-defined]


def test_datasets_models_and_lineage_against_the_server(server: str, tmp_path: Path) -> None:
    env = {"LOCKSTEP_TRACKING_URI": server}
    writer = tmp_path / "writer"
    (writer / "data").mkdir(parents=True)
    (writer / "data" / "a.csv").write_text("1,2\n3,4\n")
    (writer / "train.py").write_text(TRAIN)
    assert "data@v1" in ok(lockstep(writer, "data", "add", "data", "-m", "first", env=env))
    (writer / "data" / "b.csv").write_text("5,6\n")
    assert "added     b.csv" in ok(lockstep(writer, "data", "status", env=env))
    ok(lockstep(writer, "data", "add", "data", "-m", "second", env=env))
    ok(lockstep(writer, "run", "--name", "fit", "--", sys.executable, "train.py", env=env))
    registered = register(writer, "staging", env)
    assert "clf@v1" in ok(registered)
    assert not (writer / ".lockstep" / "lockstep.db").exists()

    reader = tmp_path / "reader"
    reader.mkdir()
    listed = json.loads(ok(lockstep(reader, "data", "ls", "--json", env=env)))
    assert [(d["dataset"], d["version"], d["files"]) for d in listed] == [("data", 2, 2)]
    log = ok(lockstep(reader, "data", "log", "data", env=env))
    assert "first" in log and "second" in log
    assert "b.csv" in ok(lockstep(reader, "data", "diff", "data@v1", "data@v2", env=env))
    ok(lockstep(reader, "data", "checkout", "data@v1", env=env))
    assert (reader / "data" / "a.csv").read_text() == "1,2\n3,4\n"
    assert not (reader / "data" / "b.csv").exists()
    ok(lockstep(reader, "models", "get", "clf@staging", "--to", "got", env=env))
    assert (reader / "got" / "model.bin").read_text() == "1,2\n3,4\n" * 10
    shown = json.loads(ok(lockstep(reader, "models", "show", "clf@staging", "--json", env=env)))
    assert shown["version"] == 1 and shown["aliases"] == ["staging"]
    ok(lockstep(reader, "models", "alias", "clf@v1", "prod", "-m", "ship it", env=env))
    history = json.loads(ok(lockstep(reader, "models", "log", "clf", "--json", env=env)))
    assert [m["alias"] for m in history["alias_history"]] == ["staging", "prod"]
    graph = json.loads(ok(lockstep(reader, "lineage", "clf@prod", "--json", env=env)))
    kinds = {n["kind"] for n in graph["nodes"]}
    assert {"model", "run", "dataset"} <= kinds, graph
    shown_run = ok(lockstep(reader, "show", "fit", env=env))
    assert "clf@v1" in shown_run
    # The same, read by the catalog routes.
    base = f"{server}/api/v1/projects/default"
    [latest] = httpx.get(f"{base}/datasets").json()["datasets"]
    assert latest["ref"] == "data@v2" and latest["files"] == 2
    versions = httpx.get(f"{base}/datasets/data/versions").json()["versions"]
    assert [v["message"] for v in versions] == ["first", "second"]
    [model] = httpx.get(f"{base}/models").json()["models"]
    assert model["model_aliases"] == {"prod": 1, "staging": 1}
    history = httpx.get(f"{base}/models/clf/versions").json()["alias_history"]
    assert [(m["alias"], m["to"], m["note"]) for m in history][-1] == ("prod", 1, "ship it")
    walked = httpx.get(f"{base}/lineage", params={"ref": "clf@prod"}).json()
    assert walked == graph
    for path in ("/datasets/nope/versions", "/models/..%2F/versions", "/runs/zz/verifications"):
        assert httpx.get(f"{base}{path}").status_code == 404, path
    # The server never looks at its own files for a client, nor fails on odd names.
    for ref in ("file:/etc/passwd", "/etc/passwd", "0" * 600):
        refused = httpx.get(f"{base}/lineage", params={"ref": ref})
        assert refused.status_code == 400 and "passwd#" not in refused.text, (ref, refused.text)


def records_call(server: str, kind: str, method: str, args: object = (), kwargs: object = None):
    from lockstep.remote.records import encode

    return httpx.post(
        f"{server}{RECORDS}/{kind}/{method}",
        json={"args": encode(list(args)), "kwargs": encode(dict(kwargs or {}))},  # type: ignore[call-overload]
    )


def test_hostile_records_calls_are_refused(server: str) -> None:
    from lockstep.meta.datasets import FileEntry

    digest = "a" * 64
    good = {
        "name": "d",
        "manifest_digest": digest,
        "files": [FileEntry(path="x.csv", digest=digest, size=1, mode=0o644)],
        "message": "",
        "source_path": "d",
        "kind": "dir",
    }
    cases = [
        ("datasets", "nope", (), {}),
        ("secrets", "dataset_names", (), {}),
        ("datasets", "__init__", (), {}),
        ("datasets", "add_version", (), {**good, "name": "../etc"}),
        ("datasets", "add_version", (), {**good, "manifest_digest": "xyz"}),
        (
            "datasets",
            "add_version",
            (),
            {**good, "files": [FileEntry(path="../../x", digest=digest, size=1, mode=0o644)]},
        ),
        (
            "datasets",
            "add_version",
            (),
            {**good, "files": [FileEntry(path="/etc/passwd", digest=digest, size=1, mode=0o644)]},
        ),
        (
            "datasets",
            "add_version",
            (),
            {**good, "files": [FileEntry(path="a", digest=digest, size=-1, mode=0o644)]},
        ),
        ("datasets", "add_version", (), {**good, "engine": "x"}),
        ("datasets", "link_run", ("not-a-run", 1, "input"), {}),
        ("datasets", "link_run", ("0" * 26, 1, "owner"), {}),
        (
            "models",
            "move_alias",
            (),
            {"name": "m", "alias": "v2", "number": 1, "host": "h", "user": "u"},
        ),
    ]
    for kind, method, args, kwargs in cases:
        refused = records_call(server, kind, method, args, kwargs)
        assert refused.status_code == 400, (kind, method, kwargs, refused.text)
        assert refused.json()["kind"] in ("UsageError", "InvalidValue"), refused.text
    for body in (
        {"args": [{"$type": "Popen", "fields": {}}], "kwargs": {"$map": []}},
        {"args": [{"$type": "FileEntry", "fields": {"path": "a"}}], "kwargs": {"$map": []}},
        {"args": "x", "kwargs": {}},
        {"args": [{"$unknown": 1}], "kwargs": {"$map": []}},
    ):
        refused = httpx.post(f"{server}{RECORDS}/datasets/resolve", json=body)
        assert refused.status_code == 400, (body, refused.text)
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    assert (
        httpx.post(
            f"{server}{RECORDS}/datasets/resolve", json={"args": [deep], "kwargs": {"$map": []}}
        ).status_code
        == 400
    )
    # Nothing was written by any of it.
    assert records_call(server, "datasets", "dataset_names").json() == {"result": []}
    # A version the client describes is re-read from the server: an id it lacks is 404.
    from lockstep.meta.datasets import DatasetVersion

    forged = DatasetVersion(
        id=999,
        dataset="d",
        number=1,
        manifest_digest=digest,
        created_at=0.0,
        message="",
        size=0,
        file_count=0,
        source_path="d",
        kind="dir",
    )
    assert records_call(server, "datasets", "tag", (forged, "t")).status_code == 404


def test_push_to_and_pull_from_a_server(server: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    (local / "data").mkdir(parents=True)
    (local / "data" / "a.csv").write_text("1,2\n3,4\n")
    (local / "train.py").write_text(TRAIN)
    ok(lockstep(local, "data", "add", "data"))
    ok(lockstep(local, "run", "--name", "fit", "--", sys.executable, "train.py"))
    ok(register(local, "prod", {}))
    ok(lockstep(local, "remote", "add", "team", server))
    pushed = ok(lockstep(local, "push"))
    assert "1 runs, 1 datasets, 1 models" in pushed
    env = {"LOCKSTEP_TRACKING_URI": server}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert [r["name"] for r in json.loads(ok(lockstep(elsewhere, "runs", "--json", env=env)))] == [
        "fit"
    ]
    verified = lockstep(elsewhere, "verify", "fit", env=env)
    assert "IDENTICAL" in ok(verified)  # the pushed objects rebuild the run there
    second = tmp_path / "second"
    second.mkdir()
    ok(lockstep(second, "remote", "add", "team", server))
    pulled = ok(lockstep(second, "pull"))
    assert "2 runs, 1 datasets, 1 models" in pulled  # fit and its verification's rerun
    assert "prod=v1" in ok(lockstep(second, "models", "ls"))
    ok(lockstep(second, "data", "checkout", "data@v1"))
    assert (second / "data" / "a.csv").read_text() == "1,2\n3,4\n"
    # Pushing again sends nothing new and changes nothing.
    again = ok(lockstep(local, "push"))
    assert "pushed 0 objects" in again


def test_a_hostile_push_is_refused_whole(server: str, tmp_path: Path) -> None:
    from lockstep.core.ids import new_run_id

    session = "ab" * 16
    run_id = new_run_id()
    doc = {
        "schema_version": 1,
        "id": run_id,
        "name": "evil",
        "experiment": "default",
        "status": "finished",
        "start_time": 1.0,
        "end_time": 2.0,
        "host": "h",
        "pid": 1,
        "params": {},
        "tags": {},
        "metrics": [],
        "sections": {},
        "artifacts": [
            {"path": "../../../etc/cron.d/x", "digest": "a" * 64, "size": 1, "kind": "output"}
        ],
    }
    base = f"{server}/api/v1/projects/default/documents"
    # What a push that never ended staged two days ago is swept by the next push.
    stale = tmp_path / "served" / ".lockstep" / "incoming" / ("cd" * 16)
    (stale / "meta" / "runs").mkdir(parents=True)
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    assert (
        httpx.put(
            f"{base}/runs/{run_id}.json", params={"session": session}, content=json.dumps(doc)
        ).status_code
        == 204
    )
    assert not stale.exists()
    refused = httpx.post(f"{base}/import", params={"session": session})
    assert refused.status_code == 400, refused.text
    assert "refused runs/" in refused.json()["error"] and "artifacts[0].path" in refused.text
    assert httpx.get(f"{base}/runs").json() == {"names": []}
    for name, params in (
        ("../x.json", {"session": session}),
        ("x.json", {"session": "../.."}),
        ("x.txt", {"session": session}),
    ):
        bad = httpx.put(f"{base}/runs/{name}", params=params, content=b"{}")
        assert bad.status_code in (400, 404, 405), (name, bad.text)


def _random_value(rng: object, depth: int = 0) -> object:
    import random

    assert isinstance(rng, random.Random)
    choice = rng.randrange(12 if depth < 3 else 6)
    leaves: list[object] = [
        None,
        rng.choice([0, 1, -1, 2**70, 3.5, 1e308]),
        rng.choice(["", "a", "x@v1", "../x", "a" * 300, "\x00", "m@latest", "d@v99"]),
        True,
        "0" * 26,
        "a" * 64,
    ]
    if choice < len(leaves):
        return leaves[choice]
    inner = [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return [
        inner,
        {"$tuple": inner},
        {"$set": inner},
        {"$map": [[_random_value(rng, depth + 1), _random_value(rng, depth + 1)]]},
        {
            "$type": "FileEntry",
            "fields": {
                k: _random_value(rng, depth + 1) for k in ("path", "digest", "size", "mode")
            },
        },
        {"$type": rng.choice(["DatasetVersion", "ModelVersion", "AliasMove"]), "fields": {}},
    ][choice - len(leaves)]


def test_random_records_calls_never_fail_the_server(server: str) -> None:
    """Values of every shape the codec carries, in every argument of every method: each
    answer is a refusal or an answer, never a server error (and nothing is written)."""
    import random

    from lockstep.remote.records import METHODS

    rng = random.Random(11)
    names = ["name", "ref", "run_id", "digests", "version_id", "files", "alias", "number"]
    with httpx.Client(base_url=f"{server}{RECORDS}") as client:
        for kind, methods in METHODS.items():
            for method in methods:
                for _ in range(25):
                    args = [_random_value(rng) for _ in range(rng.randrange(4))]
                    kwargs = [
                        [rng.choice(names), _random_value(rng)] for _ in range(rng.randrange(3))
                    ]
                    answer = client.post(
                        f"/{kind}/{method}",
                        content=json.dumps({"args": args, "kwargs": {"$map": kwargs}}),
                    )
                    assert answer.status_code < 500, (kind, method, args, kwargs, answer.text)
    assert records_call(server, "datasets", "dataset_names").json() == {"result": []}
    assert records_call(server, "models", "model_names").json() == {"result": []}

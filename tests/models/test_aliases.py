"""Alias moves under contention (real processes, SQLite and PostgreSQL) and across stores."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Backend, clean_env
from tests.tracking.test_launcher import lockstep

MAKE_VERSIONS = """
import lockstep
for number in (1, 2):
    with lockstep.start(name=f"maker{number}"):
        open(f"m{number}.bin", "w").write(f"weights {number}")
        lockstep.models.register("m", f"m{number}.bin")
"""


def make_versions(where: Path, env: dict[str, str]) -> None:
    made = subprocess.run(
        [sys.executable, "-c", MAKE_VERSIONS],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr


MOVER = """
import sys, time
from lockstep.models.registry import ModelRegistry
from lockstep.tracking.api import open_workspace
registry = ModelRegistry(open_workspace())
target = registry.records.resolve(sys.argv[1])
while not __import__("os").path.exists("go"):
    time.sleep(0.005)
for _ in range(int(sys.argv[2])):
    registry.move_alias(target, "production")
"""


@pytest.fixture(params=["sql", "server"])
def alias_env(request: pytest.FixtureRequest, project: Backend) -> Iterator[dict[str, str]]:
    """The movers' environment: the store itself, or a server in front of it."""
    if request.param == "sql":
        yield project.env()
        return
    from tests.serverproc import served

    project.store_dir.mkdir(parents=True, exist_ok=True)
    with served(project.store_dir, "--db", project.meta_url) as url:
        yield {"LOCKSTEP_TRACKING_URI": url}


def test_two_processes_moving_one_alias_lose_no_move(alias_env: dict[str, str]) -> None:
    """Directly on SQLite or PostgreSQL, or each through a server: one unbroken chain."""
    workdir = Path.cwd()
    env = {**clean_env(), **alias_env}
    make_versions(workdir, env)
    moves = 25
    movers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(MOVER), ref, str(moves)],
            cwd=workdir,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ref in ("m@v1", "m@v2")
    ]
    (workdir / "go").write_text("")
    for mover in movers:
        _, err = mover.communicate(timeout=120)
        assert mover.returncode == 0, err
    logged = lockstep(workdir, "models", "log", "m", "--json", env=alias_env)
    history = json.loads(logged.stdout)["alias_history"]
    assert len(history) == 2 * moves
    assert sorted(m["to"] for m in history).count(1) == moves
    # One chain: each move starts where the one before left the alias.
    assert history[0]["from"] is None
    for before, after in itertools.pairwise(history):
        assert after["from"] == before["to"]
    shown = lockstep(workdir, "models", "show", "m@production", "--json", env=alias_env)
    assert json.loads(shown.stdout)["version"] == history[-1]["to"]


def _store(path: Path, remote: Path) -> None:
    path.mkdir()
    assert lockstep(path, "init").returncode == 0
    assert lockstep(path, "remote", "add", "team", str(remote)).returncode == 0


def test_a_pull_never_overwrites_a_diverged_alias(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    _store(alice, remote)
    make_versions(alice, clean_env())
    assert lockstep(alice, "models", "alias", "m@v1", "production").returncode == 0
    assert lockstep(alice, "push").returncode == 0
    _store(bob, remote)
    assert lockstep(bob, "pull").returncode == 0
    assert lockstep(bob, "models", "get", "m@production", "--to", "got").returncode == 0
    assert (bob / "got" / "m1.bin").read_text() == "weights 1"

    # Alice moves on and pushes; Bob's pull follows (his history is a prefix of hers).
    assert lockstep(alice, "models", "alias", "m@v2", "production").returncode == 0
    assert lockstep(alice, "push").returncode == 0
    assert lockstep(bob, "pull").returncode == 0
    shown = json.loads(lockstep(bob, "models", "show", "m@production", "--json").stdout)
    assert shown["version"] == 2

    # Both move it differently: Bob's pull says so and keeps his; his push is refused.
    assert (
        lockstep(alice, "models", "alias", "m@v1", "production", "-m", "rollback").returncode == 0
    )
    assert lockstep(alice, "push").returncode == 0
    assert lockstep(bob, "models", "alias", "m@v1", "production").returncode == 0
    assert lockstep(bob, "models", "alias", "m@v2", "production").returncode == 0
    pulled = lockstep(bob, "pull")
    assert pulled.returncode == 1
    assert "m@production: moved here and on the remote" in pulled.stderr
    shown = json.loads(lockstep(bob, "models", "show", "m@production", "--json").stdout)
    assert shown["version"] == 2  # his, not overwritten
    pushed = lockstep(bob, "push")
    assert pushed.returncode == 1 and "pull, then push again" in pushed.stderr
    theirs = json.loads((remote / "meta" / "models" / "m.json").read_text())
    assert theirs["alias_history"][-1]["note"] == "rollback"  # Alice's move survives


def test_a_hostile_model_document_is_refused_whole(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    origin = tmp_path / "origin"
    _store(origin, remote)
    make_versions(origin, clean_env())
    assert lockstep(origin, "push").returncode == 0
    document = remote / "meta" / "models" / "m.json"
    doc = json.loads(document.read_text())
    # A manifest that would write outside the project when the version is fetched.
    from lockstep.core.canonical import canonical_json, digest_bytes

    evil = canonical_json(
        {"schema_version": 1, "kind": "dir", "files": [["../../escape.txt", 1, 420, "a" * 64]]}
    )
    evil_digest = digest_bytes(evil)
    target = remote / "objects" / "blake3" / evil_digest[:2] / evil_digest[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(evil)
    for field, value in (
        ("manifest", evil_digest),
        ("run", "../../etc"),
        ("number", -1),
    ):
        bad = json.loads(json.dumps(doc))
        bad["versions"][0][field] = value
        document.write_text(json.dumps(bad))
        victim = tmp_path / f"victim-{field}"
        _store(victim, remote)
        pulled = lockstep(victim, "pull")
        assert pulled.returncode == 1, pulled.stderr
        assert "refused" in pulled.stderr, pulled.stderr
        # Where the manifest's path would land from the victim's project.
        assert not (victim / "../../escape.txt").resolve().exists()
        listed = lockstep(victim, "models", "ls", "--json")
        assert json.loads(listed.stdout) == []
    bad = json.loads(json.dumps(doc))
    bad["aliases"] = {"prod/../x": 1}
    document.write_text(json.dumps(bad))
    victim = tmp_path / "victim-alias"
    _store(victim, remote)
    pulled = lockstep(victim, "pull")
    assert pulled.returncode == 1 and "aliases" in pulled.stderr

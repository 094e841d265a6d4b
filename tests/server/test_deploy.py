"""The deployment files' commands, run as commands (no Docker engine or systemd here):
the Dockerfile's install names real extras and its entrypoint starts a server with
tokens on; the systemd unit's migrate and start lines work as written."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx

from tests.conftest import S3_ENV
from tests.serverproc import free_port, served

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    found = []
    for line in dockerfile.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def lockstep_args(argv: list[str]) -> list[str]:
    """The arguments after the lockstep executable (which is this checkout's here)."""
    assert Path(argv[0]).name == "lockstep", argv
    return argv[1:]


def on_port(args: list[str], port: int) -> list[str]:
    """The arguments with the file's --port replaced by a free one."""
    swapped = list(args)
    if "--port" in swapped:
        swapped[swapped.index("--port") + 1] = str(port)
    return swapped


def test_the_dockerfile_installs_real_extras_and_starts_an_auth_server(tmp_path: Path) -> None:
    steps = instructions(DEPLOY / "Dockerfile")
    runs = [rest for word, rest in steps if word == "RUN"]
    [install] = [r for r in runs if "pip install" in r]
    spec = shlex.split(install)[-1]
    assert spec.startswith("/src[") and ("COPY", ". /src") in steps
    extras = set(spec.removeprefix("/src[").removesuffix("]").split(","))
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras <= set(declared), extras - set(declared)
    [entrypoint] = [json.loads(rest) for word, rest in steps if word == "ENTRYPOINT"]
    [command] = [json.loads(rest) for word, rest in steps if word == "CMD"]
    assert "--auth" in entrypoint and command[0] == "--db"
    # `docker run IMAGE --db URL` replaces CMD: the same here, with a SQLite URL.
    db = f"sqlite:///{tmp_path / 'server.db'}"
    port = free_port()
    args = on_port(lockstep_args(entrypoint)[1:], port)  # after "server": served() adds it
    with served(tmp_path, *args, "--db", db, port=port) as url:
        assert httpx.get(f"{url}/health").json()["auth"] is True
        assert httpx.get(f"{url}/api/v1/projects/default/runs").status_code == 401
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "lockstep",
                "server",
                "token",
                "create",
                "--user",
                "ann",
                "--role",
                "admin",
                "--db",
                db,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        token = made.stdout.strip()
        listed = httpx.get(
            f"{url}/api/v1/projects/default/runs", headers={"authorization": f"Bearer {token}"}
        )
        assert listed.status_code == 200 and listed.json()["runs"] == []


def test_the_systemd_unit_migrates_and_starts_as_written(
    tmp_path: Path, s3_bucket: str, s3_endpoint: str
) -> None:
    unit = (DEPLOY / "lockstep-server.service").read_text().splitlines()
    lines = {
        k: v
        for k, _, v in (ln.partition("=") for ln in unit if "=" in ln and not ln.startswith("#"))
    }
    db = f"sqlite:///{tmp_path / 'server.db'}"

    def here(command: str) -> list[str]:
        argv = lockstep_args(shlex.split(command))
        swapped = [db if a.startswith("postgresql") else a for a in argv]
        return [f"s3://{s3_bucket}/lockstep" if a.startswith("s3://") else a for a in swapped]

    migrate = subprocess.run(
        [sys.executable, "-m", "lockstep", *here(lines["ExecStartPre"])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrate.returncode == 0 and "default:" in migrate.stdout, migrate.stderr
    start = here(lines["ExecStart"])
    assert start[0] == "server" and "--auth" in start and lines["KillSignal"] == "SIGTERM"
    port = free_port()
    args = on_port(start[1:], port)
    with served(tmp_path, *args, "--endpoint-url", s3_endpoint, env=S3_ENV, port=port) as url:
        assert httpx.get(f"{url}/health").json()["auth"] is True
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert f"objects in s3://{s3_bucket}/lockstep" in log and "tokens required" in log

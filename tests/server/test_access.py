"""Who may do what on a server with --auth: tokens, roles and projects, through real HTTP
and the real CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend
from tests.serverproc import served
from tests.tracking.test_launcher import lockstep

API = "/api/v1/projects"


@dataclass
class Server:
    url: str
    home: Path
    db: str

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A server-side admin command, on the server's own database."""
        return lockstep(self.home, "server", *args, "--db", self.db)

    def token(self, user: str, project: str, role: str) -> str:
        made = self.admin("token", "create", "--user", user, "--project", project, "--role", role)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()


@pytest.fixture
def server(backend: Backend, tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "served"
    home.mkdir()
    backend.store_dir.mkdir(parents=True, exist_ok=True)
    with served(home, "--db", backend.meta_url, "--auth") as url:
        found = Server(url, home, backend.meta_url)
        for name in ("alpha", "beta"):
            made = found.admin("project", "create", name)
            assert made.returncode == 0 and "created" in made.stdout, made.stderr
        yield found


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def new_run(url: str, project: str, token: str) -> httpx.Response:
    from lockstep.core.ids import new_run_id

    return httpx.post(
        f"{url}{API}/{project}/runs",
        headers=bearer(token),
        json={
            "id": new_run_id(),
            "name": "r",
            "experiment": "default",
            "start_time": 1.0,
            "host": "h",
            "pid": 1,
        },
    )


def test_the_auth_matrix(server: Server) -> None:
    url = server.url
    writer = server.token("ann", "alpha", "write")
    reader = server.token("bob", "alpha", "read")
    admin = server.token("cat", "alpha", "admin")
    other = server.token("dan", "beta", "write")
    runs = f"{url}{API}/alpha/runs"

    # No token, a wrong one: 401 with the way out named.
    for headers in ({}, bearer("lst_" + "x" * 43), {"authorization": "Basic YTpi"}):
        refused = httpx.get(runs, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "LOCKSTEP_TOKEN" in refused.json()["error"] or "wrong" in refused.json()["error"]
    assert httpx.get(f"{url}/health").status_code == 200  # health needs no token

    # A write token writes; a read token reads and cannot write.
    assert new_run(url, "alpha", writer).status_code == 201
    assert httpx.get(runs, headers=bearer(reader)).status_code == 200
    refused = new_run(url, "alpha", reader)
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert len(httpx.get(runs, headers=bearer(reader)).json()["runs"]) == 1

    # Records follow the same rules: a read token reads them and cannot write them.
    records = f"{url}{API}/alpha/records/datasets"
    empty = {"args": [], "kwargs": {"$map": []}}
    assert httpx.post(f"{records}/dataset_names", json=empty, headers=bearer(reader)).json() == {
        "result": []
    }
    wrote = httpx.post(f"{records}/link_run", json=empty, headers=bearer(reader))
    assert wrote.status_code == 403
    assert (
        httpx.post(f"{records}/dataset_names", json=empty, headers=bearer(other)).status_code == 404
    )
    upload = httpx.put(f"{url}{API}/alpha/objects/{'a' * 64}", content=b"x", headers=bearer(reader))
    assert upload.status_code == 403

    # Another project's token: 404, worded as for a project that does not exist.
    leak = httpx.get(runs, headers=bearer(other))
    ghost = httpx.get(f"{url}{API}/nosuch/runs", headers=bearer(other))
    assert leak.status_code == ghost.status_code == 404
    assert leak.json()["error"].replace("alpha", "?") == ghost.json()["error"].replace(
        "nosuch", "?"
    )
    assert new_run(url, "alpha", other).status_code == 404
    # ...and its own project holds none of alpha's runs.
    assert httpx.get(f"{url}{API}/beta/runs", headers=bearer(other)).json()["runs"] == []
    assert httpx.get(f"{url}/api/v1/projects", headers=bearer(other)).json() == {
        "projects": ["beta"]
    }

    # Tokens are an admin's: a writer may not list them; an admin of alpha manages
    # alpha's, and beta's are 404 to it.
    assert httpx.get(f"{url}{API}/alpha/tokens", headers=bearer(writer)).status_code == 403
    listed = httpx.get(f"{url}{API}/alpha/tokens", headers=bearer(admin)).json()["tokens"]
    assert {t["user"] for t in listed} == {"ann", "bob", "cat"}
    assert all("secret" not in json.dumps(t) and "token" not in t for t in listed)
    assert httpx.get(f"{url}{API}/beta/tokens", headers=bearer(admin)).status_code == 404
    [dans] = [
        t for t in json.loads(server.admin("token", "ls", "--json").stdout) if t["user"] == "dan"
    ]
    assert (
        httpx.delete(f"{url}{API}/beta/tokens/{dans['id']}", headers=bearer(admin)).status_code
        == 404
    )
    assert (
        httpx.post(
            f"{url}{API}/beta/tokens", headers=bearer(admin), json={"user": "eve", "role": "admin"}
        ).status_code
        == 404
    )
    assert httpx.get(f"{url}{API}/beta/runs", headers=bearer(other)).status_code == 200  # dan lives

    made = httpx.post(
        f"{url}{API}/alpha/tokens", headers=bearer(admin), json={"user": "fay", "role": "read"}
    )
    assert made.status_code == 201
    fay = made.json()["token"]
    assert httpx.get(runs, headers=bearer(fay)).status_code == 200
    # A revoked token is refused from the next request on.
    revoked = httpx.delete(f"{url}{API}/alpha/tokens/{made.json()['id']}", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert httpx.get(runs, headers=bearer(fay)).status_code == 401
    [anns] = [
        t for t in json.loads(server.admin("token", "ls", "--json").stdout) if t["user"] == "ann"
    ]
    assert server.admin("token", "revoke", anns["id"]).returncode == 0
    assert new_run(url, "alpha", writer).status_code == 401


def test_only_hashes_of_tokens_are_kept(server: Server, backend: Backend) -> None:
    secret = server.token("ann", "default", "write")
    assert secret.startswith("lst_") and len(secret) > 40
    listed = server.admin("token", "ls")
    assert secret not in listed.stdout and "ann" in listed.stdout
    if backend.name == "sqlite":
        kept = b"".join(p.read_bytes() for p in backend.store_dir.glob("lockstep.db*"))
        assert secret.encode() not in kept and b"ann" in kept
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(server.db)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT * FROM server_tokens").all()
        engine.dispose()
        assert rows and secret not in repr(rows)


def test_the_cli_against_an_auth_server(server: Server, tmp_path: Path) -> None:
    token = server.token("ann", "alpha", "write")
    reader = server.token("bob", "alpha", "read")
    work = tmp_path / "work"
    work.mkdir()
    env = {"LOCKSTEP_TRACKING_URI": server.url, "LOCKSTEP_PROJECT": "alpha"}

    denied = lockstep(work, "runs", env=env)
    assert denied.returncode == 1
    [line] = denied.stderr.strip().splitlines()
    assert "needs a token" in line and "LOCKSTEP_TOKEN" in line

    ran = lockstep(
        work,
        "run",
        "--name",
        "job",
        "--",
        sys.executable,
        "-c",
        "print(1)",
        env={**env, "LOCKSTEP_TOKEN": token},
    )
    assert ran.returncode == 0, ran.stderr
    listed = lockstep(work, "runs", "--json", env={**env, "LOCKSTEP_TOKEN": reader})
    assert [r["name"] for r in json.loads(listed.stdout)] == ["job"]
    # The same server's default project does not hold it.
    admin = server.token("root", "default", "admin")
    elsewhere = lockstep(
        work, "runs", "--json", env={"LOCKSTEP_TRACKING_URI": server.url, "LOCKSTEP_TOKEN": admin}
    )
    assert elsewhere.returncode == 0 and json.loads(elsewhere.stdout) == []
    # A read token cannot start a run: one line, exit 1.
    refused = lockstep(
        work, "run", "--", sys.executable, "-c", "print(1)", env={**env, "LOCKSTEP_TOKEN": reader}
    )
    assert refused.returncode == 1
    assert "read-only" in refused.stderr and "Traceback" not in refused.stderr


def login(
    url: str, work: Path, token: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`lockstep login URL --project beta`, the token on standard input."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    return subprocess.run(
        [sys.executable, "-m", "lockstep", "login", url, "--project", "beta", "--token-stdin"],
        cwd=work,
        input=token + "\n",
        capture_output=True,
        text=True,
        env={**base, **env},
        check=False,
    )


def test_login_keeps_the_token_out_of_the_project(server: Server, tmp_path: Path) -> None:
    token = server.token("ann", "beta", "write")
    work = tmp_path / "work"
    work.mkdir()
    config_home = tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(config_home)}
    wrong = login(server.url, work, "lst_wrong", env)
    assert wrong.returncode == 1 and "wrong or revoked" in wrong.stderr
    assert not (config_home / "lockstep" / "credentials.toml").exists()
    done = login(server.url, work, token, env)
    assert done.returncode == 0, done.stderr
    assert "as ann (write)" in done.stdout
    kept = config_home / "lockstep" / "credentials.toml"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert token in kept.read_text()
    project_files = b"".join(p.read_bytes() for p in (work / ".lockstep").rglob("*") if p.is_file())
    assert token.encode() not in project_files and server.url.encode() in project_files
    # From now on this project uses the server, with no variable set.
    ran = lockstep(work, "run", "--name", "kept", "--", sys.executable, "-c", "pass", env=env)
    assert ran.returncode == 0, ran.stderr
    listed = httpx.get(f"{server.url}{API}/beta/runs", headers=bearer(token)).json()["runs"]
    assert [r["name"] for r in listed] == ["kept"]
    out = lockstep(work, "logout", env=env)
    assert out.returncode == 0 and token not in kept.read_text()
    assert lockstep(work, "runs", env=env).returncode == 0  # local again


def test_listening_beyond_loopback_needs_auth_or_insecure(tmp_path: Path) -> None:
    refused = lockstep(tmp_path, "server", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2 and "--auth" in refused.stderr
    with served(tmp_path, "--host", "0.0.0.0", "--auth") as url:
        assert httpx.get(f"{url}/api/v1/projects").status_code == 401

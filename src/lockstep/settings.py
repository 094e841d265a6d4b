"""Settings, read once at an entry point (CLI or Python API) from the environment and config."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lockstep.errors import UsageError

STORE_DIRNAME = ".lockstep"
CONFIG_FILENAME = "config.toml"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything below the entry points needs to know about where and how to work."""

    cwd: Path
    # LOCKSTEP_HOME: the store directory itself (what .lockstep/ is by default).
    home: Path | None = None
    # LOCKSTEP_DB_URL: metadata elsewhere, e.g. postgresql+psycopg://host/db.
    db_url: str | None = None
    # Seconds between background metric flushes: the most a killed process can lose.
    flush_interval: float = 0.5
    # Seconds between heartbeats of a live run; other hosts call it crashed after
    # heartbeat_grace seconds of silence.
    heartbeat_interval: float = 10.0
    heartbeat_grace: float = 60.0
    # LOCKSTEP_RUN_ID: a run to attach to instead of starting a new one.
    attach_run_id: str | None = None
    # LOCKSTEP_SEED: the seed of the `lockstep run` this process belongs to.
    run_seed: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    # LOCKSTEP_TRACKING_URI (or [server] url): a lockstep server to keep the metadata.
    tracking_uri: str | None = None
    # LOCKSTEP_TOKEN: the bearer token sent to that server (never written in a
    # project; `lockstep login` keeps one in the user's config directory).
    token: str | None = None
    # LOCKSTEP_PROJECT (or [server] project, or the login's): the server's project.
    project: str | None = None
    # LOCKSTEP_SERVER_TIMEOUT: seconds a server may take to answer before its writes go
    # to the spool (a slow server is treated as a down one: training never waits).
    server_timeout: float = 10.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        home = env.get("LOCKSTEP_HOME")
        return cls(
            cwd=(cwd or Path.cwd()).resolve(),
            home=Path(home).expanduser().resolve() if home else None,
            db_url=_database_url(env.get("LOCKSTEP_DB_URL")),
            flush_interval=_positive(env, "LOCKSTEP_FLUSH_INTERVAL", 0.5),
            heartbeat_interval=_positive(env, "LOCKSTEP_HEARTBEAT_INTERVAL", 10.0),
            heartbeat_grace=_positive(env, "LOCKSTEP_HEARTBEAT_GRACE", 60.0),
            server_timeout=_positive(env, "LOCKSTEP_SERVER_TIMEOUT", 10.0),
            attach_run_id=env.get("LOCKSTEP_RUN_ID") or None,
            run_seed=int(env["LOCKSTEP_SEED"]) if env.get("LOCKSTEP_SEED", "").isdigit() else None,
            tracking_uri=server_url(env.get("LOCKSTEP_TRACKING_URI"), "LOCKSTEP_TRACKING_URI"),
            token=env.get("LOCKSTEP_TOKEN") or None,
            project=_project(env.get("LOCKSTEP_PROJECT"), "LOCKSTEP_PROJECT"),
        )

    def with_login(self, environ: Mapping[str, str] | None = None) -> Settings:
        """Fill what the environment and config left open from `lockstep login`: the
        token and project kept for the server in use."""
        from lockstep import credentials

        if not self.tracking_uri or (self.token and self.project):
            return self
        entry = credentials.read(environ).get("servers", {}).get(self.tracking_uri, {})
        if not entry:
            return self
        return replace(
            self,
            token=self.token or entry.get("token") or None,
            project=self.project or _project(entry.get("project"), "the login's project"),
        )

    def with_config(self, store_dir: Path) -> Settings:
        """Merge ``config.toml`` from the store; environment variables win."""
        path = store_dir / CONFIG_FILENAME
        if not path.is_file():
            return self
        try:
            config = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}; fix or remove the file") from None
        check_config(config, path)
        meta = config.get("meta", {})
        server = server_url(config.get("server", {}).get("url"), f"{path}: [server] url")
        project = _project(config.get("server", {}).get("project"), f"{path}: [server] project")
        return replace(
            self,
            config=config,
            db_url=self.db_url or meta.get("url") or None,
            tracking_uri=self.tracking_uri or server,
            project=self.project or project,
        )


def server_url(value: str | None, where: str) -> str | None:
    """A server's address: http:// or https://, nothing else."""
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise UsageError(f"{where} must be an http:// or https:// URL, not {value!r}")
    return value.rstrip("/")


def _project(value: str | None, where: str) -> str | None:
    from lockstep.core import validate
    from lockstep.errors import InvalidValue

    if not value:
        return None
    try:
        return validate.project(value)
    except InvalidValue as exc:
        raise UsageError(f"{where}: {exc}") from None


def write_config(store_dir: Path, config: Mapping[str, Any]) -> None:
    """Replace ``config.toml`` atomically (a crash leaves the old file or the new one)."""
    import os
    import tempfile

    import tomli_w

    path = store_dir / CONFIG_FILENAME
    fd, name = tempfile.mkstemp(dir=store_dir, prefix=".config-")
    with os.fdopen(fd, "wb") as handle:
        tomli_w.dump(dict(config), handle)
    os.replace(name, path)


def _database_url(raw: str | None) -> str | None:
    if not raw:
        return None
    scheme = raw.split("://", 1)[0]
    if "://" not in raw or not scheme.startswith(("sqlite", "postgresql")):
        raise UsageError(
            f"LOCKSTEP_DB_URL {raw.split('@')[-1]!r} is not a database URL; use "
            "postgresql+psycopg://user@host/db or sqlite:///path/lockstep.db"
        )
    return raw


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {raw!r}") from None
    # Below 10 ms the writer would spin; past a day a killed process would lose a day.
    if not 0.01 <= value <= 86400:
        raise UsageError(f"{name} must be a number of seconds from 0.01 to 86400, got {raw!r}")
    return value


_LINKS = ("reflink", "hardlink", "copy")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _count(low: int, high: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


# (table, key) -> (check, what it must be)
_CONFIG_RULES: dict[tuple[str, str], tuple[Any, str]] = {
    ("meta", "url"): (lambda v: isinstance(v, str) and "://" in v, "a database URL"),
    ("capture", "env"): (_strings, "a list of variable names or patterns"),
    ("capture", "ignore"): (_strings, "a list of path patterns"),
    ("capture", "secret_files_allowed"): (_strings, "a list of paths"),
    ("capture", "max_untracked_file_mib"): (_count(1, 1 << 20), "a whole number of MiB"),
    ("capture", "max_source_files"): (_count(1, 10_000_000), "a whole number of files"),
    ("capture", "metrics_from_output"): (lambda v: isinstance(v, bool), "true or false"),
    ("capture", "metrics_pattern"): (
        lambda v: isinstance(v, str) and 0 < len(v) <= 2000,
        "a regular expression with named groups",
    ),
    ("data", "link"): (
        lambda v: _strings(v) and v and all(x in _LINKS for x in v),
        "a list of reflink, hardlink, copy",
    ),
    ("data", "fsync"): (lambda v: isinstance(v, bool), "true or false"),
    ("data", "workers"): (_count(1, 64), "a whole number from 1 to 64"),
    ("core", "remote"): (lambda v: isinstance(v, str), "a remote's name"),
    ("server", "spool_warn_mb"): (_count(1, 1 << 30), "a whole number of MiB"),
}


def check_config(config: Mapping[str, Any], path: Path) -> None:
    """Every known setting has the type it needs: a wrong one is named here, once, rather
    than failing somewhere later."""

    def bad(where: str, value: Any, must: str) -> UsageError:
        return UsageError(f"{path}: {where} must be {must}, not {value!r}; fix the file")

    for table in ("meta", "capture", "data", "core", "remotes", "models", "server"):
        if table in config and not isinstance(config[table], dict):
            raise bad(f"[{table}]", config[table], "a table")
    for (table, key), (check, must) in _CONFIG_RULES.items():
        section = config.get(table, {})
        if key in section and not check(section[key]):
            raise bad(f"[{table}] {key}", section[key], must)
    levels = ("none", "reproduced", "within-noise")
    require = config.get("models", {}).get("require")
    if require is not None:
        wanted = require.values() if isinstance(require, dict) else [require]
        if not all(isinstance(level, str) and level in levels for level in wanted):
            raise bad(
                "[models] require",
                require,
                f"one of {', '.join(levels)}, or a table of alias patterns to one of them",
            )
    for name, remote in config.get("remotes", {}).items():
        if not isinstance(remote, dict) or not isinstance(remote.get("url"), str):
            raise bad(f"[remotes.{name}]", remote, 'a table with url = "..."')
        endpoint = remote.get("endpoint_url")
        if endpoint is not None and not isinstance(endpoint, str):
            raise bad(f"[remotes.{name}] endpoint_url", endpoint, "a URL")

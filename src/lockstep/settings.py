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

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        home = env.get("LOCKSTEP_HOME")
        return cls(
            cwd=(cwd or Path.cwd()).resolve(),
            home=Path(home).expanduser().resolve() if home else None,
            db_url=env.get("LOCKSTEP_DB_URL") or None,
            flush_interval=_positive(env, "LOCKSTEP_FLUSH_INTERVAL", 0.5),
            heartbeat_interval=_positive(env, "LOCKSTEP_HEARTBEAT_INTERVAL", 10.0),
            heartbeat_grace=_positive(env, "LOCKSTEP_HEARTBEAT_GRACE", 60.0),
            attach_run_id=env.get("LOCKSTEP_RUN_ID") or None,
            run_seed=int(env["LOCKSTEP_SEED"]) if env.get("LOCKSTEP_SEED", "").isdigit() else None,
        )

    def with_config(self, store_dir: Path) -> Settings:
        """Merge ``config.toml`` from the store; environment variables win."""
        path = store_dir / CONFIG_FILENAME
        if not path.is_file():
            return self
        try:
            config = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}; fix or remove the file") from None
        meta = config.get("meta", {})
        return replace(self, config=config, db_url=self.db_url or meta.get("url") or None)


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


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise UsageError(f"{name} must be above zero, got {raw!r}")
    return value

"""Server logins of this user: ``lockstep login URL`` keeps the URL, its project and its
token in the user's config directory (mode 0600), never in a project."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from lockstep.errors import UsageError

FILENAME = "credentials.toml"


def config_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """$XDG_CONFIG_HOME/lockstep, or ~/.config/lockstep."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "lockstep"


def read(environ: Any = None) -> dict[str, Any]:
    """The logins, {"servers": {URL: {"token": ..., "project": ...}}}; empty when this
    user never logged in."""
    path = config_dir(environ) / FILENAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}; fix or remove the file") from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot read {path}: {exc}; fix or remove the file") from None
    servers = data.get("servers", {})
    if not isinstance(servers, dict) or not all(isinstance(v, dict) for v in servers.values()):
        raise UsageError(f"{path}: [servers] must hold one table per URL; fix or remove it")
    return data


def save(url: str, token: str | None, project: str, environ: Any = None) -> Path:
    """Keep a login, replacing one for the same URL."""
    servers = dict(read(environ).get("servers", {}))
    entry: dict[str, str] = {"project": project}
    if token:
        entry["token"] = token
    servers[url] = entry
    return _write({"servers": servers}, environ)


def forget(url: str, environ: Any = None) -> bool:
    """Drop the login of url; False when there was none."""
    servers = dict(read(environ).get("servers", {}))
    if servers.pop(url, None) is None:
        return False
    _write({"servers": servers}, environ)
    return True


def _write(data: dict[str, Any], environ: Any) -> Path:
    import tomli_w

    directory = config_dir(environ)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / FILENAME
    # Created 0600 before a byte of the token is written; renamed into place whole.
    fd, name = tempfile.mkstemp(dir=directory, prefix=".credentials-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            tomli_w.dump(data, handle)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    return path

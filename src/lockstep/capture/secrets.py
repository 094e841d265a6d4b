"""Secrets never reach the store: redacted from command lines and URLs, secret files skipped.

Three rules, applied wherever capture records something:

- a command-line value that looks secret is replaced by ``<redacted>``: the value
  of an option or ``NAME=VALUE`` whose name looks secret (``--api-key``,
  ``--password=...``, ``token=...``), and any argument shaped like a known
  credential (``sk-...``, ``ghp_...``, ``AKIA...``, ``xox?-...``); what was
  redacted is recorded, so a rerun can ask for it or take it from the environment;
- credentials in URLs (``https://user:pass@host``) are removed;
- files whose names are those of secret files (below) are never stored as code,
  inputs or outputs unless the user opts their path in.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

REDACTED = "<redacted>"
# Whole parts of an option's name (split at - _ .): `--hf_token` is secret, `--max_tokens`
# and `--tokenizer` are not.
_SECRET_PARTS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "apikey",
        "bearer",
    }
)
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")}
)
_CREDENTIAL_SHAPES = re.compile(
    r"^(?:sk-[A-Za-z0-9_-]{16,}|sk_live_[A-Za-z0-9]{16,}|ghp_[A-Za-z0-9]{20,}|"
    r"github_pat_[A-Za-z0-9_]{20,}|gho_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{16,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|"
    r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})$"
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
# Never stored unless opted in: `[capture] secret_files_allowed = ["path", ...]`.
SECRET_FILES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "client_secret*.json",
    "service-account*.json",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "secrets.toml",
    "secrets.yaml",
    "secrets.yml",
    "secrets.json",
)


@dataclass(frozen=True, kw_only=True)
class Redacted:
    """One redacted argument: where it was and what it was called."""

    index: int
    name: str  # the option or variable name, or "credential" for a bare token

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "name": self.name}


def _option_name(argument: str) -> str:
    return argument.lstrip("-").split("=", 1)[0]


def secret_name(name: str) -> bool:
    """Whether an option or variable name says its value is a secret."""
    parts = [p for p in re.split(r"[-_.]", name.lower()) if p]
    return any(p in _SECRET_PARTS for p in parts) or any(
        pair in _SECRET_PAIRS for pair in itertools.pairwise(parts)
    )


def redact_argv(argv: Iterable[str]) -> tuple[list[str], list[Redacted]]:
    """The command line with secret-looking values replaced, and what was replaced."""
    out: list[str] = []
    redacted: list[Redacted] = []
    pending: str | None = None  # an option whose value is the next argument
    for index, argument in enumerate(argv):
        if pending is not None and not argument.startswith("-"):
            out.append(REDACTED)
            redacted.append(Redacted(index=index, name=pending))
            pending = None
            continue
        pending = None
        name, sep, value = argument.partition("=")
        bare = _option_name(name)
        if sep and value and secret_name(bare) and re.fullmatch(r"-{0,2}[\w.-]+", name):
            out.append(f"{name}={REDACTED}")
            redacted.append(Redacted(index=index, name=bare))
        elif argument.startswith("-") and not sep and secret_name(bare):
            out.append(argument)
            pending = bare
        elif _CREDENTIAL_SHAPES.match(argument):
            out.append(REDACTED)
            redacted.append(Redacted(index=index, name="credential"))
        else:
            out.append(redact_url(argument))
    return out, redacted


def redact_url(text: str) -> str:
    """Text with the user:password part of every URL in it removed."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)


def is_secret_file(path: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a project-relative path names a secret file (and was not opted in)."""
    if path in allowed or any(fnmatch.fnmatchcase(path, p) for p in allowed):
        return False
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_FILES)


def secret_variable(name: str) -> str:
    """The variable a rerun reads a redacted value from: LOCKSTEP_SECRET_<NAME>."""
    return "LOCKSTEP_SECRET_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()

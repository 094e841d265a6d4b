"""The validation boundary: paths, digests, names and modes from outside, checked in one place.

Everything a remote document, a manifest or a user hands lockstep is hostile until it
passes here. A path is relative, normalised, free of ``..``, never absolute, with no
drive or NUL; a digest is BLAKE3's 64 lowercase hex characters; a name
(dataset, model, tag, remote) is 1 to 128 of ``A-Z a-z 0-9 . _ -``, starting with a
letter or digit; a run id is 26 of ``0-9 a-z``; a mode keeps only whether the file is
executable. Each check raises ``InvalidValue`` naming the field and the rule.
"""

from __future__ import annotations

import re
from typing import Any

from lockstep.errors import InvalidValue

NAME_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# Projects also name PostgreSQL schemas and directories: no quoting ever needed.
PROJECT_RULE = "1-32 characters of a-z 0-9 _, starting with a letter"
_PROJECT = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RUN_ID = re.compile(r"[0-9a-z]{26}")
_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PATH = 4096


def name(value: Any, field: str) -> str:
    """A dataset, model, tag or remote name."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in {".", ".."}:
        raise InvalidValue(field, value, NAME_RULE)
    return value


def project(value: Any, field: str = "project") -> str:
    """A server project's name."""
    if not isinstance(value, str) or not _PROJECT.fullmatch(value):
        raise InvalidValue(field, value, PROJECT_RULE)
    return value


def run_id(value: Any, field: str = "run id") -> str:
    if not isinstance(value, str) or not _RUN_ID.fullmatch(value):
        raise InvalidValue(field, value, "26 characters of 0-9 a-z")
    return value


def digest(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise InvalidValue(field, value, "a BLAKE3 digest: 64 lowercase hex characters")
    return value


def relative_path(value: Any, field: str, *, allow_dot: bool = False) -> str:
    """A path inside a tree: relative, normalised, with no way out of it."""
    if not isinstance(value, str) or not value:
        raise InvalidValue(field, value, "a non-empty relative path")
    if allow_dot and value == ".":
        return value
    if "\x00" in value or len(value) > MAX_PATH:
        raise InvalidValue(field, value, f"a relative path without NUL, under {MAX_PATH} bytes")
    if value.startswith("/") or _DRIVE.match(value):
        raise InvalidValue(field, value, "a relative path, not an absolute one")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidValue(field, value, "a normalised relative path (no '', '.' or '..' parts)")
    return value


def mode(value: Any, field: str) -> int:
    """A recorded file mode as lockstep applies it: 0o755 if executable, else 0o644.

    Setuid, setgid, sticky and write bits from outside never survive.
    """
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise InvalidValue(field, value, "an octal file mode") from None
    if value is None:
        return 0o644
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o7777:
        raise InvalidValue(field, value, "an octal file mode")
    return 0o755 if value & 0o111 else 0o644


def integer(value: Any, field: str, low: int = 0, high: int = 2**63 - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidValue(field, value, f"an integer from {low} to {high}")
    return value


def text(value: Any, field: str, *, optional: bool = False, limit: int = 1 << 20) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidValue(field, value, f"a string of at most {limit} characters")
    return value


def alias(value: Any, field: str = "alias") -> str:
    """A model alias: a name (no spaces, slashes or @) that cannot read as a version."""
    name(value, field)
    if value == "latest" or (value[:1] == "v" and value[1:].isdigit()):
        raise InvalidValue(field, value, "a name that does not read as a version (vN, latest)")
    return str(value)

"""Canonical JSON (sorted keys, no spaces, UTF-8) and its BLAKE3 digest, for anything hashed."""

from __future__ import annotations

import json
from typing import Any

DIGEST_ALGORITHM = "blake3"


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a JSON value that lockstep hashes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest_bytes(data: bytes) -> str:
    """The hex BLAKE3 digest of bytes."""
    from blake3 import blake3

    return str(blake3(data).hexdigest())


def digest_json(value: Any) -> str:
    """The digest of a JSON value's canonical encoding."""
    return digest_bytes(canonical_json(value))

"""Run ids: 26-character, time-sortable, unique across machines (ULID layout, lowercase)."""

from __future__ import annotations

import os
import time

# Crockford's base32 leaves out I, L, O and U so ids survive being read aloud.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_LENGTH = 26
_TIME_CHARS = 10


def new_run_id(now_ms: int | None = None) -> str:
    """A new id: 48 bits of milliseconds then 80 random bits from the OS.

    The randomness comes from os.urandom so lockstep never touches the user's
    global random generators.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def id_time_ms(run_id: str) -> int:
    """The creation time, in milliseconds since the epoch, encoded in an id."""
    value = 0
    for ch in run_id[:_TIME_CHARS]:
        value = (value << 5) | _ALPHABET.index(ch)
    return value


def looks_like_id_prefix(text: str) -> bool:
    """Whether text could be the start of a run id."""
    return 0 < len(text) <= ID_LENGTH and all(ch in _ALPHABET for ch in text.lower())

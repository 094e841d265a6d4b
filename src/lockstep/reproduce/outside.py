"""Files a run read from outside its project: recorded by path and digest, never stored.

A rerun cannot restore them, so when one has changed it is the likely cause of a
difference, and verify and rerun say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockstep.core.records import RunRecord


def outside_inputs(record: RunRecord) -> dict[str, dict[str, Any]]:
    """{absolute path: {"digest", "size"}} of what the run read outside its project."""
    entries = record.sections.get("outside_inputs", [])
    if not isinstance(entries, list):
        return {}
    return {
        e["path"]: e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("path"), str) and "digest" in e
    }


def changed_outside(record: RunRecord, other: RunRecord | None) -> list[str]:
    """Outside inputs that differ: between the two runs, or (other None) since the run."""
    from lockstep.objects.hashing import hash_file

    mine = outside_inputs(record)
    notes: list[str] = []
    if other is not None:
        theirs = outside_inputs(other)
        for path in sorted(mine.keys() | theirs.keys()):
            x, y = mine.get(path), theirs.get(path)
            if x is None or y is None:
                side = "B" if x is None else "A"
                notes.append(f"{path}, outside the project, was read only by run {side}")
            elif x["digest"] != y["digest"]:
                notes.append(f"{path}, outside the project, differs between the runs")
        return notes
    for path, entry in sorted(mine.items()):
        target = Path(path)
        if not target.is_file():
            notes.append(f"{path}, read from outside the project, is gone")
            continue
        try:
            digest, _ = hash_file(target)
        except OSError as exc:
            notes.append(f"{path}, read from outside the project, cannot be read: {exc.strerror}")
            continue
        if digest != entry["digest"]:
            notes.append(
                f"{path}, read from outside the project, changed since the run "
                "(recorded by digest only; lockstep cannot restore it)"
            )
    return notes

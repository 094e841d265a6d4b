"""The public surface: a curated, sorted __all__ and an import that stays light."""

from __future__ import annotations

import subprocess
import sys

import lockstep


def test_all_is_sorted_and_resolvable() -> None:
    assert lockstep.__all__ == sorted(lockstep.__all__)
    for name in lockstep.__all__:
        assert getattr(lockstep, name) is not None


def test_import_loads_no_heavy_module() -> None:
    code = (
        "import sys, lockstep\n"
        "heavy = [m for m in ('sqlalchemy', 'numpy', 'torch', 'rich', 'click', 'alembic',"
        " 'psutil', 'blake3') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        lockstep.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")

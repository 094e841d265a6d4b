"""A read-only store can still be read: listings, records, metrics, datasets, status, fsck.

The store is made read-only the way a shared or archived one is, by a read-only bind
mount (in a private mount namespace, so nothing outside the test sees it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.tracking.test_launcher import lockstep


def _can_mount_read_only(directory: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory}",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def read_only(store: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lockstep ARGS` in project with its store mounted read-only."""
    command = " ".join(f"'{a}'" for a in (sys.executable, "-m", "lockstep", *args))
    script = (
        f"mount --bind '{store}' '{store}' && mount -o remount,bind,ro '{store}' && "
        f"cd '{project}' && exec {command}"
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_read_works_on_a_read_only_store(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "a.txt").write_text("alpha\n")
    (project / "job.py").write_text(
        "import lockstep\nwith lockstep.start() as run:\n    run.log({'loss': 0.5})\n"
    )
    for args in (
        ("init",),
        ("data", "add", "data", "--name", "d"),
        ("run", "--name", "job", "--", sys.executable, "job.py"),
    ):
        assert lockstep(project, *args).returncode == 0
    store = project / ".lockstep"
    if not _can_mount_read_only(store):
        pytest.skip("no private mount namespace here to make the store read-only")

    runs = read_only(store, project, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert [r["name"] for r in json.loads(runs.stdout)] == ["job"]
    shown = read_only(store, project, "show", "job", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metrics"] == {"loss": 0.5}
    for args in (
        ("metrics", "job", "loss"),
        ("data", "ls"),
        ("data", "status"),
        ("data", "log", "d"),
        ("fsck",),
    ):
        result = read_only(store, project, *args)
        assert result.returncode == 0, (args, result.stderr)
    written = read_only(store, project, "note", "job", "hello")
    assert written.returncode == 1
    assert written.stderr.startswith("error: ") and "read-only" in written.stderr
    assert "Traceback" not in written.stderr and "unexpected" not in written.stderr

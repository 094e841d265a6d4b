"""`lockstep rerun --env recreate`: a fresh virtual environment with the recorded pins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep, show


def test_recreated_environment_runs_the_command_and_names_what_cannot_be_installed(
    tmp_path: Path,
) -> None:
    env = tmp_path / "minimal-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next((env / "lib").glob("python*/site-packages"))
    # A distribution no index has: the rebuild must say it could not install it.
    info = site / "lockstep_missing_pkg_zz-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: lockstep-missing-pkg-zz\nVersion: 0.0.1\n")
    project = make_repo(
        tmp_path / "project",
        {
            "job.py": "import random, sys\nopen('out.txt', 'w').write(str(random.random()))\n",
            ".gitignore": "out.txt\n",
        },
    )
    assert lockstep(project, "init").returncode == 0
    original = lockstep(
        project, "run", "--name", "minimal", "--", str(env / "bin" / "python"), "job.py"
    )
    assert original.returncode == 0, original.stderr
    packages = show(project, "minimal")["environment"]["packages"]
    assert {p["name"] for p in packages} == {"lockstep-missing-pkg-zz"}

    result = lockstep(project, "rerun", "minimal", "--env", "recreate", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "cannot install lockstep-missing-pkg-zz==0.0.1" in result.stderr
    rerun = show(project)
    assert rerun["tags"]["environment"] == "recreate"
    assert rerun["command"]["argv"][0].endswith("minimal-env/bin/python") is False
    assert rerun["command"]["argv"][0].endswith("/bin/python")
    verdict = lockstep(project, "verify", "minimal", "--against", rerun["id"], "--json")
    assert json.loads(verdict.stdout)["verdict"] == "IDENTICAL"


def test_recreated_environment_installs_the_recorded_pins_and_reproduces(tmp_path: Path) -> None:
    env = tmp_path / "six-env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    installed = subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "six==1.16.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        import pytest

        pytest.skip(f"no package index reachable: {installed.stderr.strip()[-200:]}")
    project = make_repo(
        tmp_path / "project",
        {
            "job.py": "import six\nopen('out.txt', 'w').write(six.__version__)\n",
            ".gitignore": "out.txt\n",
        },
    )
    assert lockstep(project, "init").returncode == 0
    original = lockstep(
        project, "run", "--name", "six", "--", str(env / "bin" / "python"), "job.py"
    )
    assert original.returncode == 0, original.stderr
    assert {"name": "six", "version": "1.16.0"}.items() <= next(
        p for p in show(project, "six")["environment"]["packages"] if p["name"] == "six"
    ).items()

    result = lockstep(project, "rerun", "six", "--env", "recreate", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "cannot install" not in result.stderr
    rerun = show(project)
    python = rerun["command"]["argv"][0]
    assert python.endswith("/bin/python") and not python.startswith(str(env))
    versions = {p["name"]: p["version"] for p in rerun["environment"]["packages"]}
    assert versions["six"] == "1.16.0"
    verdict = lockstep(project, "verify", "six", "--against", rerun["id"], "--json")
    assert json.loads(verdict.stdout)["verdict"] == "IDENTICAL"

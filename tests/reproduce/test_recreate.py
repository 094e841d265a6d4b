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

"""What the README promises, each through the CLI as a user runs it: options and settings
that had no test of their own, and the human-readable output of the main commands."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep, show

LOGS = textwrap.dedent("""
    import sys, lockstep
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with lockstep.start() as run:
        for step in range(n):
            run.log({"loss": 1.0 / (step + 1)})
    print("loss", round(1.0 / n, 6))
""")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "project", {"logs.py": LOGS, ".gitignore": "data/\n"})
    assert lockstep(root, "init").returncode == 0
    return root


def ok(root: Path, *args: str, **kw: object) -> str:
    result = lockstep(root, *args, **kw)  # type: ignore[arg-type]
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_init_path_creates_the_store_there(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    out = lockstep(tmp_path, "init", str(target))
    assert out.returncode == 0, out.stderr
    assert (target / ".lockstep" / "lockstep.db").is_file() or (target / "lockstep.db").is_file()


def test_runs_by_experiment_and_all_and_metrics_all(repo: Path) -> None:
    for i in range(23):
        ok(repo, "run", "-e", "sweep" if i % 2 else "other", "--", sys.executable, "logs.py", "2")
    listed = json.loads(ok(repo, "runs", "--json"))
    assert len(listed) == 20  # the default page
    assert len(json.loads(ok(repo, "runs", "--all", "--json"))) == 23
    sweep = json.loads(ok(repo, "runs", "-e", "sweep", "--all", "--json"))
    assert len(sweep) == 11 and {r["experiment"] for r in sweep} == {"sweep"}
    ok(repo, "run", "--name", "long", "--", sys.executable, "logs.py", "50")
    shown = ok(repo, "metrics", "long", "loss", "-n", "2")
    assert "..." in shown and "50 points" in shown
    every = ok(repo, "metrics", "long", "loss", "--all")
    assert "..." not in every and "50 points" in every


def test_rerun_name_and_per_key_tolerances(repo: Path) -> None:
    ok(repo, "run", "--name", "base", "--", sys.executable, "logs.py", "3")
    ok(repo, "rerun", "base", "--name", "again")
    assert show(repo, "again")["reproduction_of"]["run"] == show(repo, "base")["id"]
    ok(repo, "run", "--name", "other", "--", sys.executable, "logs.py", "4")
    # loss differs by 0.25 -> 0.333 (33%) at the last step; stdout too.
    far = json.loads(lockstep(repo, "verify", "other", "--against", "base", "--json").stdout)
    assert far["verdict"] == "NOT_REPRODUCED"
    loose = lockstep(
        repo, "verify", "base", "--against", "base", "--tol", "loss=0.5", "--json"
    ).stdout
    assert json.loads(loose)["tolerance"]["per_key"] == {"loss": 0.5}
    (repo / "pyproject.toml").write_text("[tool.lockstep.verify]\ntol = { loss = 0.75 }\n")
    table = json.loads(lockstep(repo, "verify", "base", "--against", "base", "--json").stdout)
    assert table["tolerance"]["per_key"] == {"loss": 0.75}
    flag_wins = json.loads(
        lockstep(repo, "verify", "base", "--against", "base", "--tol", "loss=0.1", "--json").stdout
    )
    assert flag_wins["tolerance"]["per_key"] == {"loss": 0.1}


def test_human_readable_output_of_show_verify_diff_and_explain(repo: Path) -> None:
    ok(repo, "run", "--name", "a", "--seed", "1", "--", sys.executable, "logs.py", "3")
    ok(repo, "run", "--name", "b", "--seed", "1", "--", sys.executable, "logs.py", "5")
    env = {"COLUMNS": "200"}
    shown = ok(repo, "show", "a", env=env)
    for word in ("command", "seed", "code", "environment", "hardware", "loss"):
        assert word in shown, word
    verified = lockstep(repo, "verify", "a", "--against", "b", env=env)
    assert verified.returncode == 1
    assert "NOT_REPRODUCED" in verified.stdout and "metric loss" in verified.stdout
    diff = ok(repo, "diff", "a", "b", env=env)
    assert "params" in diff and "[5]" not in diff and "{+5+}" in diff and "metrics" in diff
    explained = ok(repo, "explain", "a", "b", env=env)
    assert "baseline: A reproduces itself" in explained
    assert "params: command" in explained


def test_explain_environment_factor_and_what_cannot_be_swapped(repo: Path) -> None:
    (repo / ".lockstep" / "config.toml").write_text('[capture]\nenv = ["MY_SCALE"]\n')
    (repo / "scaled.py").write_text(
        "import os\nprint('value', float(os.environ.get('MY_SCALE', '1')) * 2)\n"
    )
    seeded = ("--seed", "1")
    ok(
        repo,
        "run",
        "--name",
        "one",
        *seeded,
        "--",
        sys.executable,
        "scaled.py",
        env={"MY_SCALE": "1"},
    )
    ok(
        repo,
        "run",
        "--name",
        "two",
        *seeded,
        "--",
        sys.executable,
        "scaled.py",
        env={"MY_SCALE": "3"},
    )
    result = json.loads(ok(repo, "explain", "one", "two", "--json"))
    assert result["conclusion"] == "environment: MY_SCALE"
    assert [f["factor"] for f in result["factors"]] == ["environment"]
    # Another interpreter with other packages: not something explain can swap here.
    import subprocess

    venv = repo.parent / "bare-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ok(
        repo,
        "run",
        "--name",
        "bare",
        *seeded,
        "--",
        str(venv / "bin" / "python"),
        "scaled.py",
        env={"MY_SCALE": "5"},
    )
    other = json.loads(ok(repo, "explain", "two", "bare", "--json"))
    assert "environment differ and cannot be swapped here" in other["not_swappable"]


def test_explain_says_when_a_run_does_not_reproduce_itself(repo: Path) -> None:
    (repo / "clock.py").write_text("import time\nprint('t', time.time_ns() % 1000003)\n")
    ok(repo, "run", "--name", "c1", "--seed", "1", "--", sys.executable, "clock.py")
    ok(repo, "run", "--name", "c2", "--seed", "1", "--", sys.executable, "clock.py")
    result = json.loads(ok(repo, "explain", "c1", "c2", "--json"))
    assert result["baseline"].startswith("A does not reproduce itself (its rerun differs in")
    assert "output stdout" in result["baseline"]
    assert (
        result["conclusion"] == "the recorded inputs are the same: the difference is nondeterminism"
    )


def test_remotes_default_named_push_and_pull_and_conflicts(repo: Path, tmp_path: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "a.txt").write_text("one\n")
    ok(repo, "data", "add", "data", "--name", "d")
    first, second = tmp_path / "first", tmp_path / "second"
    ok(repo, "remote", "add", "first", str(first))
    ok(repo, "remote", "add", "second", str(second), "--default")
    listed = ok(repo, "remote", "ls")
    assert "first" in listed and "second" in listed and "default" in listed
    ok(repo, "push")  # to the default
    assert (second / "meta" / "datasets" / "d.json").is_file() and not first.exists()
    ok(repo, "push", "first")
    assert (first / "meta" / "datasets" / "d.json").is_file()
    ok(repo, "remote", "rm", "first")
    assert "first" not in ok(repo, "remote", "ls")

    other = tmp_path / "other"
    other.mkdir()
    ok(other, "init")
    (other / "data").mkdir()
    (other / "data" / "a.txt").write_text("a different first version\n")
    ok(other, "data", "add", "data", "--name", "d")
    ok(other, "remote", "add", "second", str(second))
    pulled = lockstep(other, "pull", "second")
    assert pulled.returncode == 1
    assert "conflict: d@v1 differs here and on the remote" in pulled.stderr


def test_migrate_through_the_cli(repo: Path) -> None:
    assert "is current" in ok(repo, "migrate")


def test_capture_and_data_settings_apply(repo: Path) -> None:
    (repo / ".lockstep" / "config.toml").write_text(
        "[capture]\n"
        'ignore = ["scratch/*"]\n'
        "max_untracked_file_mib = 1\n"
        "[data]\n"
        'link = ["hardlink", "copy"]\n'
        "fsync = false\n"
        "workers = 2\n"
    )
    (repo / "big.bin").write_bytes(b"\0" * (2 << 20))  # untracked, over the 1 MiB cap
    (repo / "io.py").write_text(
        "import os\nos.makedirs('scratch', exist_ok=True)\n"
        "open('scratch/tmp.txt', 'w').write('x')\nopen('kept.txt', 'w').write('y')\n"
    )
    ran = lockstep(repo, "run", "--name", "io", "--", sys.executable, "io.py")
    assert ran.returncode == 0 and "over the 1 MiB cap" in ran.stderr
    record = show(repo, "io")
    assert [o["path"] for o in record["outputs"]] == ["kept.txt"]
    assert record["code"]["over_cap"] == ["big.bin"]
    (repo / "data").mkdir()
    (repo / "data" / "x.bin").write_bytes(b"payload")
    ok(repo, "data", "add", "data", "--name", "linked")
    inode = (repo / "data" / "x.bin").stat().st_ino
    objects = (repo / ".lockstep" / "objects" / "blake3").rglob("*")
    assert any(p.is_file() and p.stat().st_ino == inode for p in objects), (
        "[data] link = hardlink was not applied"
    )


def test_meta_url_in_config_points_the_metadata_elsewhere(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "meta.db"
    (repo / ".lockstep" / "config.toml").write_text(f'[meta]\nurl = "sqlite:///{elsewhere}"\n')
    ok(repo, "run", "--name", "m", "--", sys.executable, "logs.py", "2")
    assert elsewhere.is_file()
    assert [r["name"] for r in json.loads(ok(repo, "runs", "--json"))] == ["m"]


def test_heartbeat_variables_are_read_and_checked(repo: Path) -> None:
    bad = lockstep(repo, "runs", env={"LOCKSTEP_HEARTBEAT_GRACE": "0"})
    assert bad.returncode == 2 and "LOCKSTEP_HEARTBEAT_GRACE" in bad.stderr
    good = lockstep(
        repo,
        "run",
        "--",
        sys.executable,
        "logs.py",
        env={"LOCKSTEP_HEARTBEAT_INTERVAL": "0.05", "LOCKSTEP_HEARTBEAT_GRACE": "5"},
    )
    assert good.returncode == 0, good.stderr


def test_audit_every_watches_every_kth_step(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "t.py").write_text(
        textwrap.dedent("""
            import torch
            torch.manual_seed(0)
            m = torch.nn.Linear(4, 1)
            opt = torch.optim.SGD(m.parameters(), lr=0.1)
            for _ in range(8):
                opt.zero_grad()
                m(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
        """)
    )
    audit = lockstep(
        tmp_path, "audit", "--steps", "3", "--every", "2", "--json", "--", sys.executable, "t.py"
    )
    assert audit.returncode == 0, audit.stderr
    result = json.loads(audit.stdout)
    fingerprints = show(tmp_path, result["runs"][0])["tensor_fingerprints"]
    assert fingerprints["every"] == 2 and len(fingerprints["steps"]) == 3
    text = lockstep(tmp_path, "audit", "--steps", "2", "--", sys.executable, "t.py")
    assert text.returncode == 0 and "no divergence" in text.stdout


def test_max_source_files_caps_the_snapshot_outside_git(tmp_path: Path) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    for i in range(5):
        (project / f"m{i}.py").write_text(f"X = {i}\n")
    assert lockstep(project, "init").returncode == 0
    (project / ".lockstep" / "config.toml").write_text("[capture]\nmax_source_files = 3\n")
    ran = lockstep(project, "run", "--", sys.executable, "m0.py")
    assert ran.returncode == 0
    assert "more than 3 source files; recorded the first 3 only" in ran.stderr
    code = show(project)["code"]
    assert code["kind"] == "files" and code["truncated"] is True and len(code["files"]) == 3

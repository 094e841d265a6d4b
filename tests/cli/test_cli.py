"""The lockstep command in real subprocesses: output, JSON, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import lockstep
from lockstep.cli.main import cli
from tests.conftest import Backend


def lockstep_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockstep", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def recorded(project: Backend) -> Backend:
    for i, lr in enumerate((0.001, 0.1)):
        with lockstep.start(experiment="sweep", name=f"run{i}", params={"lr": lr}) as run:
            for step in range(30):
                run.log({"loss": 1.0 / (step + 1) + lr}, step=step)
            run.set_tag("stage", "dev")
    return project


def test_init_creates_the_store_with_a_gitignore(tmp_path: Path) -> None:
    env = {"LOCKSTEP_HOME": ""}
    result = lockstep_cli("init", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    assert (tmp_path / ".lockstep" / "lockstep.db").is_file()
    assert (tmp_path / ".lockstep" / ".gitignore").read_text().strip().endswith("*")
    again = lockstep_cli("init", cwd=tmp_path, env=env)
    assert "already initialised" in again.stdout
    # Found from a subdirectory, like .git.
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    listing = lockstep_cli("runs", cwd=tmp_path / "sub" / "deeper", env=env)
    assert listing.returncode == 0 and "no runs" in listing.stdout


def test_runs_show_metrics_json(recorded: Backend, tmp_path: Path) -> None:
    env = recorded.env()
    table = lockstep_cli("runs", "--filter", "params.lr > 0.01", cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    assert "run1" in table.stdout and "run0" not in table.stdout
    listed = json.loads(
        lockstep_cli("runs", "--json", "-s", "params.lr", cwd=tmp_path, env=env).stdout
    )
    assert [r["name"] for r in listed] == ["run0", "run1"]
    shown = json.loads(lockstep_cli("show", "run1", "--json", cwd=tmp_path, env=env).stdout)
    for key in (
        "id",
        "name",
        "experiment",
        "status",
        "start_time",
        "end_time",
        "params",
        "metrics",
        "tags",
        "artifacts",
    ):
        assert key in shown
    assert shown["status"] == "finished" and shown["params"] == {"lr": 0.1}
    assert shown["metrics"]["loss"] == pytest.approx(1 / 30 + 0.1)
    human = lockstep_cli("show", shown["id"][:10], cwd=tmp_path, env=env)
    assert "run1" in human.stdout and "loss" in human.stdout
    series = json.loads(
        lockstep_cli("metrics", "last", "loss", "--json", cwd=tmp_path, env=env).stdout
    )
    assert series["steps"] == list(range(30))
    text = lockstep_cli("metrics", "last", "loss", "-n", "3", cwd=tmp_path, env=env)
    assert "30 points" in text.stdout and "..." in text.stdout


def test_note_tag_and_rm(recorded: Backend, tmp_path: Path) -> None:
    env = recorded.env()
    assert lockstep_cli("note", "run0", "looks good", cwd=tmp_path, env=env).returncode == 0
    assert lockstep_cli("tag", "run0", "owner=ana", cwd=tmp_path, env=env).returncode == 0
    assert lockstep_cli("tag", "run0", "stage", "--delete", cwd=tmp_path, env=env).returncode == 0
    shown = json.loads(lockstep_cli("show", "run0", "--json", cwd=tmp_path, env=env).stdout)
    assert shown["note"] == "looks good" and shown["tags"] == {"owner": "ana"}
    removed = lockstep_cli("rm", "run0", cwd=tmp_path, env=env)
    assert removed.returncode == 0 and "deleted run0" in removed.stdout
    assert lockstep_cli("show", "run0", cwd=tmp_path, env=env).returncode == 2


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("show", "nothing-here"), 2, "no run matches 'nothing-here'"),
        (("show", "abc"), 2, "at least 4 characters"),
        (("runs", "--filter", "params.lr >"), 2, "column 12"),
        (("runs", "--sort", "bogus"), 2, "unknown field"),
        (("metrics", "run0", "nope"), 2, "no metric 'nope'"),
        (("tag", "run0", "novalue"), 2, "key=value"),
        (("runs", "--limit", "-1"), 2, "Invalid value"),
        (("frobnicate",), 2, "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    recorded: Backend, tmp_path: Path, args: tuple[str, ...], code: int, fragment: str
) -> None:
    result = lockstep_cli(*args, cwd=tmp_path, env=recorded.env())
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_ambiguous_name_lists_candidates(recorded: Backend, tmp_path: Path) -> None:
    with lockstep.start(name="run0"):
        pass
    result = lockstep_cli("show", "run0", cwd=tmp_path, env=recorded.env())
    assert result.returncode == 2
    assert "matches 2 runs" in result.stderr


def test_debug_shows_the_traceback(recorded: Backend, tmp_path: Path) -> None:
    result = lockstep_cli("--debug", "show", "nothing-here", cwd=tmp_path, env=recorded.env())
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_store_from_newer_lockstep_exits_1_naming_the_version(tmp_path: Path) -> None:
    import sqlalchemy as sa

    home = tmp_path / "store"
    assert lockstep_cli("init", cwd=tmp_path, env={"LOCKSTEP_HOME": str(home)}).returncode == 0
    engine = sa.create_engine(f"sqlite:///{home / 'lockstep.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0042'")
        connection.exec_driver_sql(
            "UPDATE lockstep_info SET value = '9.1.0' WHERE key = 'writer_version'"
        )
    engine.dispose()
    result = lockstep_cli("runs", cwd=tmp_path, env={"LOCKSTEP_HOME": str(home)})
    assert result.returncode == 1
    assert "lockstep 9.1.0" in result.stderr and "Traceback" not in result.stderr


def test_missing_store_for_a_read_command(tmp_path: Path) -> None:
    result = lockstep_cli("runs", cwd=tmp_path, env={"LOCKSTEP_HOME": str(tmp_path / "none")})
    assert result.returncode == 1
    assert "lockstep init" in result.stderr


def test_migrate_reports_current_schema(recorded: Backend, tmp_path: Path) -> None:
    result = lockstep_cli("migrate", cwd=tmp_path, env=recorded.env())
    assert result.returncode == 0, result.stderr
    assert "is current" in result.stdout


def _commands(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found.append(command)
        if isinstance(command, click.Group):
            found.extend(_commands(command))
    return found


def test_every_command_has_help_text() -> None:
    for command in _commands(cli):
        assert command.help and command.help.strip(), command.name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{command.name} {param.name}"


def test_show_code_prints_the_recorded_diff_and_untracked_files(tmp_path: Path) -> None:
    from tests.gitrepo import make_repo
    from tests.tracking.test_launcher import lockstep as run_cli

    root = make_repo(tmp_path / "code", {"train.py": "print(1)\n"})
    (root / "train.py").write_text("print(2)  # an uncommitted edit\n")
    (root / "helper.py").write_text("X = 1\n")
    assert run_cli(root, "run", "--", sys.executable, "train.py").returncode == 0
    text = run_cli(root, "show", "last", "--code")
    assert text.returncode == 0, text.stderr
    assert "+print(2)  # an uncommitted edit" in text.stdout
    assert "untracked: helper.py" in text.stdout
    as_json = json.loads(run_cli(root, "show", "last", "--code", "--json").stdout)
    assert as_json["kind"] == "git" and len(as_json["commit"]) == 40
    assert "-print(1)" in as_json["diff"] and as_json["files"][0]["path"] == "helper.py"
    report = run_cli(root, "report", "last").stdout
    assert "## Uncommitted changes" in report and "+print(2)" in report

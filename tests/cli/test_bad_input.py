"""Bad input, table-driven through the CLI: one clear line, the right exit code, the store as
it was, and never "unexpected" or a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.tracking.test_launcher import lockstep


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(
        tmp_path_factory.mktemp("bad") / "project",
        {"train.py": "print('acc 0.9')\n", ".gitignore": "data/\n"},
    )
    (root / "data").mkdir()
    (root / "data" / "x.csv").write_text("1,2\n")
    (root / "afile.txt").write_text("not a directory\n")
    for args in (
        ("init",),
        ("run", "--name", "base", "--", sys.executable, "train.py"),
        ("data", "add", "data", "--name", "d"),
    ):
        assert lockstep(root, *args).returncode == 0
    return root


def state(project: Path) -> tuple[list[str], list[str]]:
    runs = json.loads(lockstep(project, "runs", "--all", "--json").stdout)
    data = json.loads(lockstep(project, "data", "ls", "--json").stdout)
    return sorted(r["id"] for r in runs), sorted(d["ref"] for d in data)


Setup = Callable[[Path], None]


def config(text: str | bytes) -> Setup:
    def write(project: Path) -> None:
        path = project / ".lockstep" / "config.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return write


DEEP = "(" * 3000 + "params.a = 1" + ")" * 3000
MANY = " or ".join(["params.a = 1"] * 3001)

# (case, args, env, setup, exit code, words the message must hold)
CASES: list[tuple[str, tuple[str, ...], dict[str, str], Setup | None, int, str]] = [
    (
        "filter int past int64",
        ("runs", "-f", "params.lr > 99999999999999999999"),
        {},
        None,
        2,
        "integer out of range",
    ),
    (
        "filter float past double",
        ("runs", "-f", "metrics.acc < 1e999"),
        {},
        None,
        2,
        "number out of range",
    ),
    ("filter nested 3000 deep", ("runs", "-f", DEEP), {}, None, 2, "nested more than 100"),
    ("filter of 3001 terms", ("runs", "-f", MANY), {}, None, 2, "more than 500 conditions"),
    (
        "duration against text",
        ("runs", "-f", "duration > 'x'"),
        {},
        None,
        2,
        "duration is a number",
    ),
    ("status against a number", ("runs", "-f", "status > 5"), {}, None, 2, "status is a name"),
    ("unknown status", ("runs", "-f", "status = 'done'"), {}, None, 2, "unknown status 'done'"),
    ("-n past range", ("runs", "-n", "99999999999999999999"), {}, None, 2, "-n"),
    (
        "param of 5000 digits",
        ("run", "-p", "x=" + "9" * 5000, "--", "true"),
        {},
        None,
        2,
        "parameter 'x'",
    ),
    (
        "param nested 3000 deep",
        ("run", "-p", "x=" + "[" * 3000 + "]" * 3000, "--", "true"),
        {},
        None,
        2,
        "nests too deeply",
    ),
    (
        "bad database URL",
        ("runs",),
        {"LOCKSTEP_DB_URL": "not a url"},
        None,
        2,
        "is not a database URL",
    ),
    (
        "flush interval nan",
        ("runs",),
        {"LOCKSTEP_FLUSH_INTERVAL": "nan"},
        None,
        2,
        "LOCKSTEP_FLUSH_INTERVAL must be a number of seconds from 0.01",
    ),
    (
        "flush interval inf",
        ("runs",),
        {"LOCKSTEP_FLUSH_INTERVAL": "inf"},
        None,
        2,
        "from 0.01 to 86400",
    ),
    (
        "flush interval 1e-300",
        ("runs",),
        {"LOCKSTEP_FLUSH_INTERVAL": "1e-300"},
        None,
        2,
        "from 0.01 to 86400",
    ),
    ("config with binary bytes", ("runs",), {}, config(b"\xff\xfe\x00garbage"), 2, "cannot read"),
    (
        "config workers = many",
        ("data", "status"),
        {},
        config('[data]\nworkers = "many"\n'),
        2,
        "[data] workers must be a whole number from 1 to 64, not 'many'",
    ),
    (
        "config meta url = 5",
        ("runs",),
        {},
        config("[meta]\nurl = 5\n"),
        2,
        "[meta] url must be a database URL, not 5",
    ),
    (
        "config remotes = x",
        ("push",),
        {},
        config('remotes = "x"\n'),
        2,
        "[remotes] must be a table",
    ),
    (
        "config remote without url",
        ("push",),
        {},
        config("[remotes.team]\nkind = 1\n"),
        2,
        "[remotes.team] must be a table with url",
    ),
    (
        "-o into a missing directory",
        ("report", "base", "-o", "missing/dir/r.md"),
        {},
        None,
        2,
        "is not a directory",
    ),
    (
        "checkout --to a file",
        ("data", "checkout", "d", "--to", "afile.txt"),
        {},
        None,
        2,
        "afile.txt",
    ),
    (
        "negative rtol",
        ("verify", "base", "--against", "base", "--rtol", "-1"),
        {},
        None,
        2,
        "tolerance rtol must be a finite number >= 0",
    ),
    (
        "nan rtol",
        ("verify", "base", "--against", "base", "--rtol", "nan"),
        {},
        None,
        2,
        "tolerance rtol must be a finite number >= 0",
    ),
    (
        "dataset name with a slash",
        ("data", "add", "data", "--name", "a/b"),
        {},
        None,
        2,
        "dataset name 'a/b' is not valid",
    ),
    ("versioning the store", ("data", "add", ".lockstep"), {}, None, 2, "lockstep's own store"),
    (
        "pull from a missing directory",
        ("pull", "gone"),
        {},
        config('[remotes.gone]\nurl = "/nonexistent/lockstep-remote"\n'),
        1,
        "remote directory /nonexistent/lockstep-remote does not exist",
    ),
    (
        "push to a directory remote that is a file",
        ("push", "file"),
        {},
        None,
        1,
        "is a file, not a directory",
    ),
    ("unknown run", ("show", "nope-nope"), {}, None, 2, "no run matches"),
]


@pytest.mark.parametrize(
    ("args", "env", "setup", "code", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    project: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    setup: Setup | None,
    code: int,
    words: str,
) -> None:
    config_path = project / ".lockstep" / "config.toml"
    saved = config_path.read_bytes() if config_path.exists() else None
    if args[:2] == ("push", "file"):
        config(f'[remotes.file]\nurl = "{project / "afile.txt"}"\n')(project)
    before = state(project)
    if setup is not None:
        setup(project)
    try:
        result = lockstep(project, *args, env=env)
    finally:
        if saved is None:
            config_path.unlink(missing_ok=True)
        else:
            config_path.write_bytes(saved)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith(("error:", "Error:", "Usage:")), result.stderr
    if not lines[0].startswith("error: invalid filter"):  # a filter also shows its column
        assert len([line for line in lines if line.startswith(("error", "Error"))]) == 1
    assert words in result.stderr, result.stderr
    assert state(project) == before

"""The verdict matrix: every kind of change against every kind of result, through the CLI.

For each kind of result (a logged metric only, an output file only, printed output only)
and each kind of change (code committed, code uncommitted, data, a param, the seed, an
environment variable), `verify B --against A` must say NOT_REPRODUCED and `explain A B`
must name that factor; an untouched rerun must be IDENTICAL. No false verdict anywhere.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gitrepo import git, make_repo
from tests.reproduce.test_verdicts import cli, run_ok

TRAIN = textwrap.dedent("""
    import os, random, sys
    mode, lr = sys.argv[1], float(sys.argv[2])
    data = [float(x) for x in open("data/values.txt").read().split()]
    offset = 0.0
    scale = float(os.environ.get("MY_SCALE", "1"))
    result = sum(data) * lr * scale + offset + random.random()
    if mode == "metric":
        import lockstep
        with lockstep.start() as run:
            run.log({"result": result})
    elif mode == "file":
        os.makedirs("out", exist_ok=True)
        open("out/result.txt", "w").write(repr(result))
    else:
        print("result", result)
""")


def project(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "matrix", {"train.py": TRAIN, ".gitignore": "data/\nout/\n"})
    (root / "data").mkdir()
    (root / "data" / "values.txt").write_text("1 2 3 4\n")
    assert cli(root, "init").returncode == 0
    # MY_SCALE is one of the project's own variables: recorded, restored, swappable.
    (root / ".lockstep" / "config.toml").write_text('[capture]\nenv = ["MY_SCALE"]\n')
    return root


def record(
    root: Path, name: str, mode: str, *, lr: str = "0.1", seed: str = "1", scale: str = "1"
) -> None:
    run_ok(
        root,
        "--name",
        name,
        "--seed",
        seed,
        "--",
        sys.executable,
        "train.py",
        mode,
        lr,
        env={"MY_SCALE": scale},
    )


def edit_code(root: Path) -> None:
    (root / "train.py").write_text(TRAIN.replace("offset = 0.0", "offset = 1.0"))


def restore_code(root: Path) -> None:
    git(root, "checkout", "-q", "--", "train.py")


# change -> (records run B with that change and puts the tree back, the factor to name)
Maker = Callable[[Path, str, str], None]
CHANGES: dict[str, tuple[Maker, str]] = {}


def change(name: str, factor: str) -> Callable[[Maker], Maker]:
    def register(make: Maker) -> Maker:
        CHANGES[name] = (make, factor)
        return make

    return register


@change("code committed", "code")
def _code_committed(root: Path, name: str, mode: str) -> None:
    edit_code(root)
    git(root, "commit", "-qam", "offset 1")
    record(root, name, mode)
    git(root, "revert", "--no-edit", "HEAD")


@change("code uncommitted", "code")
def _code_uncommitted(root: Path, name: str, mode: str) -> None:
    edit_code(root)
    record(root, name, mode)
    restore_code(root)


@change("data", "data")
def _data(root: Path, name: str, mode: str) -> None:
    (root / "data" / "values.txt").write_text("1 2 3 5\n")
    record(root, name, mode)
    (root / "data" / "values.txt").write_text("1 2 3 4\n")


@change("param", "params")
def _param(root: Path, name: str, mode: str) -> None:
    record(root, name, mode, lr="0.2")


@change("seed", "seed")
def _seed(root: Path, name: str, mode: str) -> None:
    record(root, name, mode, seed="2")


@change("environment variable", "environment")
def _variable(root: Path, name: str, mode: str) -> None:
    record(root, name, mode, scale="2")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["metric", "file", "printed"])
def test_every_change_is_caught_for_every_kind_of_result(tmp_path: Path, mode: str) -> None:
    root = project(tmp_path)
    record(root, "a", mode)
    kind = {"metric": "metrics", "file": "artifacts", "printed": "printed"}[mode]

    untouched = cli(root, "verify", "a", "--json")
    assert untouched.returncode == 0, untouched.stderr
    verdict = json.loads(untouched.stdout)
    assert verdict["verdict"] == "IDENTICAL"
    assert [f["status"] for f in verdict[kind]] == ["identical"]

    failures = []
    for number, (label, (make, factor)) in enumerate(CHANGES.items()):
        name = f"b{number}"
        make(root, name, mode)
        against = cli(root, "verify", name, "--against", "a", "--json")
        result = json.loads(against.stdout)
        if against.returncode != 1 or result["verdict"] != "NOT_REPRODUCED":
            failures.append(f"{mode} / {label}: verify said {result['verdict']}")
            continue
        if not any(f["status"] == "differs" for f in result[kind]):
            failures.append(f"{mode} / {label}: no {kind} difference found")
        explained = cli(root, "explain", "a", name, "--json")
        assert explained.returncode == 0, explained.stderr
        explanation = json.loads(explained.stdout)
        if explanation["baseline"] != "A reproduces itself":
            failures.append(f"{mode} / {label}: baseline {explanation['baseline']!r}")
        if not explanation["conclusion"].startswith(f"{factor}:"):
            failures.append(f"{mode} / {label}: explain concluded {explanation['conclusion']!r}")
    assert not failures, "\n".join(failures)

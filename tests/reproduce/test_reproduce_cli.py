"""rerun / verify / diff / explain / report end to end: real git, real processes, the CLI."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.gitrepo import git, make_repo
from tests.tracking.test_launcher import lockstep, show

TRAIN = textwrap.dedent("""
    import sys
    import numpy as np
    import lockstep

    lr = float(sys.argv[sys.argv.index("--lr") + 1]) if "--lr" in sys.argv else 0.1
    data = np.loadtxt("data/points.csv", delimiter=",")
    x, y = data[:, :-1], data[:, -1]
    w = np.random.randn(x.shape[1]) * 0.01
    with lockstep.start() as run:
        for step in range(40):
            batch = np.random.permutation(len(y))[:16]
            p = 1 / (1 + np.exp(-x[batch] @ w))
            w -= lr * x[batch].T @ (p - y[batch]) / 16
            run.log({"loss": float(np.mean((1 / (1 + np.exp(-x @ w)) - y) ** 2))})
    np.save("model.npy", w)
""")


def write_data(project: Path, bump: float = 0.0) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x.sum(axis=1) > 0).astype(float)
    x[5, 0] += bump
    (project / "data").mkdir(exist_ok=True)
    np.savetxt(project / "data" / "points.csv", np.c_[x, y], delimiter=",")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "project", {"train.py": TRAIN, ".gitignore": "data/\n*.npy\n"})
    write_data(root)
    assert lockstep(root, "init").returncode == 0
    return root


def run(project: Path, name: str, *args: str, seed: str = "1") -> None:
    result = lockstep(
        project, "run", "--name", name, "--seed", seed, "--", sys.executable, "train.py", *args
    )
    assert result.returncode == 0, result.stderr


def test_verify_reruns_from_the_record_identical_with_ignored_data_restored(
    project: Path, tmp_path: Path
) -> None:
    unseeded = lockstep(project, "run", "--name", "base", "--", sys.executable, "train.py")
    assert unseeded.returncode == 0, unseeded.stderr
    # The data is git-ignored and now gone: the rerun restores it from the store.
    (project / "data" / "points.csv").unlink()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = lockstep(project, "verify", "base", "--json", env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    assert list(scratch.iterdir()) == []  # the rebuilt tree is gone, with its directory
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "IDENTICAL"
    assert {m["name"] for m in verdict["metrics"]} == {"loss"}
    assert {a["name"] for a in verdict["artifacts"]} == {"model.npy"}
    rerun = show(project, verdict["against"])
    assert rerun["reproduction_of"]["run"] == show(project, "base")["id"]
    assert rerun["tags"]["reproduction_of"] == show(project, "base")["id"]
    assert rerun["code"]["commit"] == show(project, "base")["code"]["commit"]
    history = show(project, "base")["verifications"]
    assert history[-1]["verdict"] == "IDENTICAL"


def test_rerun_keeps_the_rebuilt_tree_on_request(project: Path, tmp_path: Path) -> None:
    (project / "train.py").write_text(TRAIN + "# an uncommitted edit\n")
    (project / "extra.py").write_text("VALUE = 1\n")
    run(project, "dirty")
    workdir = tmp_path / "rebuilt"
    result = lockstep(project, "rerun", "dirty", "--workdir", str(workdir), "--keep")
    assert result.returncode == 0, result.stderr
    assert (workdir / "train.py").read_text().endswith("# an uncommitted edit\n")
    assert (workdir / "extra.py").read_text() == "VALUE = 1\n"
    assert (workdir / "data" / "points.csv").read_bytes() == (
        project / "data" / "points.csv"
    ).read_bytes()
    assert "same Python, packages, hardware and variables" in result.stderr
    git(project, "worktree", "remove", "--force", str(workdir))


@pytest.mark.parametrize(
    ("change", "dimension", "factor"),
    [
        ("data", "data", "data"),
        ("param", "params", "params"),
        ("code", "code", "code"),
        ("seed", "seeds", "seed"),
    ],
)
def test_each_change_is_found_in_its_dimension_and_explained(
    project: Path, change: str, dimension: str, factor: str
) -> None:
    run(project, "a")
    args: tuple[str, ...] = ()
    seed = "1"
    if change == "data":
        write_data(project, bump=3.0)
    elif change == "param":
        args = ("--lr", "0.5")
    elif change == "code":
        (project / "train.py").write_text(TRAIN.replace("range(40)", "range(41)"))
    else:
        seed = "2"
    run(project, "b", *args, seed=seed)
    differences = json.loads(lockstep(project, "diff", "a", "b", "--json").stdout)
    assert set(differences) - {"metrics", "outputs"} == {dimension}
    if change == "data":
        assert differences["data"]["modified"][0]["path"] == "data/points.csv"
    if change == "code":
        assert "train.py" in differences["code"]["modified"]
        assert "+    for step in range(41):" in differences["code"]["diff"]
    against = lockstep(project, "verify", "a", "--against", "b", "--json")
    assert against.returncode == 1
    assert json.loads(against.stdout)["verdict"] == "NOT_REPRODUCED"
    explained = lockstep(project, "explain", "a", "b", "--json")
    assert explained.returncode == 0, explained.stderr
    result = json.loads(explained.stdout)
    assert [f["factor"] for f in result["factors"]] == [factor]
    assert result["factors"][0]["reproduces"] == "B"
    assert result["conclusion"].startswith(f"{factor}:")
    # The hybrid reruns are cached: a second explain runs nothing.
    again = json.loads(lockstep(project, "explain", "a", "b", "--json").stdout)
    assert all(f["cached"] for f in again["factors"])


def test_missing_input_stops_the_rerun_before_it_runs(project: Path) -> None:
    run(project, "a")
    digest = show(project, "a")["inputs"][0]["digest"]
    stored = project / ".lockstep" / "objects" / "blake3" / digest[:2] / digest[2:]
    stored.chmod(0o644)
    stored.unlink()
    result = lockstep(project, "rerun", "a")
    assert result.returncode == 1
    assert "input data/points.csv" in result.stderr and digest in result.stderr
    assert "Traceback" not in result.stderr
    runs = json.loads(lockstep(project, "runs", "--json").stdout)
    assert len(runs) == 1  # nothing ran


def test_tolerances_and_usage_errors(project: Path) -> None:
    run(project, "a")
    write_data(project, bump=1e-9)
    run(project, "b")
    loose = lockstep(project, "verify", "a", "--against", "b", "--rtol", "0.5", "--atol", "1e-3")
    assert loose.returncode == 0 and "REPRODUCED" in loose.stdout
    (project / "pyproject.toml").write_text("[tool.lockstep.verify]\nrtol = 0.5\natol = 1e-3\n")
    from_config = lockstep(project, "verify", "a", "--against", "b", "--json")
    assert json.loads(from_config.stdout)["tolerance"]["rtol"] == 0.5
    bad = lockstep(project, "verify", "a", "--against", "b", "--tol", "loss")
    assert bad.returncode == 2 and "KEY=RTOL" in bad.stderr
    missing = lockstep(project, "verify", "nope")
    assert missing.returncode == 2


def test_seed_noise(project: Path) -> None:
    run(project, "a")
    write_data(project, bump=1e-6)
    run(project, "b")
    result = lockstep(project, "verify", "a", "--against", "b", "--seeds", "2", "--json")
    noise = json.loads(result.stdout)["seed_noise"]["metric loss"]
    assert noise["seeds"] == 3 and noise["within_noise"] is True


def test_report(project: Path, tmp_path: Path) -> None:
    run(project, "a")
    assert lockstep(project, "verify", "a").returncode == 0
    markdown = lockstep(project, "report", "a").stdout
    for fact in (
        "lockstep rerun",
        "data/points.csv",
        "IDENTICAL",
        "## Hardware",
        "## Environment",
        "seed 1",
    ):
        assert fact in markdown
    page = tmp_path / "report.html"
    assert lockstep(project, "report", "a", "--format", "html", "-o", str(page)).returncode == 0
    assert page.read_text().startswith("<!doctype html>")

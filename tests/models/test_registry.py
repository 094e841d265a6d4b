"""Model versions end to end through the real CLI: register, inspect, promote, get, remove."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.tracking.test_launcher import lockstep

TRAIN = """\
import torch
torch.manual_seed(0)
net = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(64, 4), torch.randn(64, 2)
for _ in range(5):
    opt.zero_grad()
    loss = ((net(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
print(f"loss {loss.item():.6f}")
torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 5}, "ckpt.pt")
"""


def cli(project: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return lockstep(project, *args, env=env)


def ok(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = cli(project, *args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    pytest.importorskip("torch")
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    ok(project, "init")
    ok(project, "run", "--name", "train", "--", sys.executable, "train.py")
    return project


def test_promotion_waits_for_a_reproduction_and_get_is_byte_identical_after_pull(
    trained: Path, tmp_path: Path
) -> None:
    out = ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    assert out.startswith("net@v1: 1 files")
    shown = json.loads(ok(trained, "models", "show", "net@v1", "--json"))
    summary = shown["summary"]["files"]["ckpt.pt"]
    assert summary["training_state"]["optimizer"] is True
    assert summary["resumable"] is True
    run_id = shown["run"]

    refused = cli(trained, "models", "alias", "net@v1", "production", "--require", "reproduced")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"lockstep verify {run_id}" in lines[0]
    assert json.loads(ok(trained, "models", "show", "net", "--json"))["aliases"] == []

    ok(trained, "verify", "train")
    moved = ok(trained, "models", "alias", "net@v1", "production", "--require", "reproduced")
    assert moved.strip() == "net@production -> v1"
    assert json.loads(ok(trained, "models", "show", "net@production", "--json"))["version"] == 1

    remote = tmp_path / "remote"
    ok(trained, "remote", "add", "team", str(remote))
    assert "1 models" in ok(trained, "push")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    ok(fresh, "init")
    ok(fresh, "remote", "add", "team", str(remote))
    assert "1 models" in ok(fresh, "pull")
    ok(fresh, "models", "get", "net@production", "--to", "got", "--verify")
    assert (fresh / "got" / "ckpt.pt").read_bytes() == (trained / "ckpt.pt").read_bytes()
    history = json.loads(ok(fresh, "models", "log", "net", "--json"))["alias_history"]
    assert [(m["alias"], m["from"], m["to"]) for m in history] == [("production", None, 1)]
    # The pulled store knows the run reproduced: its lineage says so.
    graph = json.loads(ok(fresh, "lineage", "net@production", "--json"))
    run_node = next(n for n in graph["nodes"] if n["kind"] == "run")
    assert run_node["verdicts"] == ["IDENTICAL"]


def test_registering_the_same_content_again_makes_no_version(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    again = ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    assert "net@v1 has this content already; no new version" in again
    versions = json.loads(ok(trained, "models", "log", "net", "--json"))["versions"]
    assert [v["version"] for v in versions] == [1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["models", "show", "nope"], "no model version matches 'nope'"),
        (["models", "show", "net@v9"], "net has versions v1 to v1"),
        (["models", "show", "net@staging"], "give vN, latest, an alias"),
        (["models", "register", "m2", "--run", "train", "--path", "nothere.pt"], "not among"),
        (["models", "alias", "net@v1", "pro duction"], "alias 'pro duction' is not valid"),
        (["models", "alias", "net@v1", "a/b"], "alias 'a/b' is not valid"),
        (["models", "alias", "net@v1", "a@b"], "alias 'a@b' is not valid"),
        (["models", "alias", "net@v1", "v2"], "does not read as a version"),
        (["models", "alias", "net", "staging", "--delete"], "net has no alias 'staging'"),
        (["models", "register", "bad name", "--run", "train", "--path", "ckpt.pt"], "not valid"),
        (["models", "tag", "net@v1", "novalue"], "must be KEY=VALUE"),
        (["lineage", "nothing-like-this"], "is no run, model version"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained: Path, args: list[str], says: str) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    result = cli(trained, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_run_is_refused_unless_allowed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "job.py").write_text(
        "open('model.bin', 'wb').write(b'weights')\nraise SystemExit(3)\n"
    )
    ok(project, "init")
    assert cli(project, "run", "--name", "bad", "--", sys.executable, "job.py").returncode == 3
    refused = cli(project, "models", "register", "m", "--run", "bad", "--path", "model.bin")
    assert refused.returncode == 2
    assert "is failed" in refused.stderr and "--allow-unfinished" in refused.stderr
    allowed = ok(
        project,
        "models",
        "register",
        "m",
        "--run",
        "bad",
        "--path",
        "model.bin",
        "--allow-unfinished",
    )
    assert allowed.startswith("m@v1")
    shown = json.loads(ok(project, "models", "show", "m", "--json"))
    assert shown["summary"]["files"]["model.bin"]["format"] == "unknown"
    assert shown["summary"]["files"]["model.bin"]["size"] == 7


def test_paths_are_relative_to_the_runs_working_directory(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub" / "out").mkdir(parents=True)
    (project / "sub" / "job.py").write_text(
        "open('out/a.bin', 'wb').write(b'a' * 10)\nopen('out/b.json', 'w').write('{}')\n"
    )
    ok(project, "init")
    ok(project / "sub", "run", "--name", "job", "--", sys.executable, "job.py")
    ok(project, "models", "register", "m", "--run", "job", "--path", "out")
    files = json.loads(ok(project, "models", "show", "m", "--json"))["file_list"]
    assert [f["path"] for f in files] == ["a.bin", "b.json"]
    ok(project, "models", "get", "m", "--to", "fetched")
    assert (project / "sub" / "fetched").exists() is False
    assert (project / "fetched" / "a.bin").read_bytes() == b"a" * 10


def test_get_refuses_to_overwrite_other_content(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    (trained / "there").mkdir()
    (trained / "there" / "ckpt.pt").write_bytes(b"mine")
    refused = cli(trained, "models", "get", "net", "--to", "there")
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (trained / "there" / "ckpt.pt").read_bytes() == b"mine"
    ok(trained, "models", "get", "net", "--to", "there", "--force")
    assert (trained / "there" / "ckpt.pt").read_bytes() == (trained / "ckpt.pt").read_bytes()


def test_rm_then_gc_keeps_what_the_run_still_needs_and_fsck_checks_models(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    digest = json.loads(ok(trained, "models", "show", "net", "--json"))["file_list"][0]["digest"]
    objects = trained / ".lockstep" / "objects" / "blake3"
    stored = objects / digest[:2] / digest[2:]
    assert stored.exists()
    assert json.loads(ok(trained, "fsck", "--json"))["ok"] is True

    ok(trained, "rm", "train")  # the run goes: the model version alone keeps its file
    ok(trained, "gc")
    assert stored.exists()
    ok(trained, "models", "get", "net", "--to", "kept", "--verify")

    stored.chmod(0o644)
    stored.write_bytes(b"rotten")
    report = json.loads(cli(trained, "fsck", "--json").stdout)
    assert digest in report["corrupt"]
    assert report["models"] == ["net@v1"]
    stored.unlink()
    report = json.loads(cli(trained, "fsck", "--json").stdout)
    assert digest in report["missing"]

    ok(trained, "models", "rm", "net@v1")
    ok(trained, "gc")
    manifest_gone = json.loads(ok(trained, "fsck", "--json"))
    assert manifest_gone["missing"] == []
    assert json.loads(ok(trained, "models", "ls", "--json")) == []
    (trained.parent / "remote").mkdir()
    ok(trained, "remote", "add", "team", str(trained.parent / "remote"))
    assert "0 models" in ok(trained, "push")  # a model without versions is not pushed


def test_tags_are_kept_per_version(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    assert ok(trained, "models", "tag", "net@v1", "stage=qa", "owner=ml").splitlines() == [
        "net@v1: stage=qa",
        "net@v1: owner=ml",
    ]
    ok(trained, "models", "tag", "net", "stage=prod")
    shown = json.loads(ok(trained, "models", "show", "net@v1", "--json"))
    assert shown["tags"] == {"stage": "prod", "owner": "ml"}


def test_an_alias_holds_its_version_against_rm(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    ok(trained, "models", "alias", "net@v1", "staging")
    refused = cli(trained, "models", "rm", "net@v1")
    assert refused.returncode == 2 and "staging" in refused.stderr
    ok(trained, "models", "alias", "net", "staging", "--delete")
    ok(trained, "models", "rm", "net@v1")
    assert cli(trained, "models", "show", "net").returncode == 2


def test_config_requires_reproduction_for_matching_aliases(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    (trained / ".lockstep" / "config.toml").write_text('[models.require]\n"prod*" = "reproduced"\n')
    assert cli(trained, "models", "alias", "net@v1", "production").returncode == 1
    ok(trained, "models", "alias", "net@v1", "staging")  # not a production alias
    assert (
        cli(trained, "models", "alias", "net@v1", "production", "--require", "none").returncode == 0
    )
    (trained / ".lockstep" / "config.toml").write_text('[models]\nrequire = "sometimes"\n')
    bad = cli(trained, "models", "ls")
    assert bad.returncode == 2 and "[models] require" in bad.stderr


def test_a_seed_noise_verdict_is_what_within_noise_accepts(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "job.py").write_text(
        "import random, time\n"
        "random.seed(time.time_ns())\n"  # never the same twice: NOT_REPRODUCED
        "print(f'acc {0.9 + random.random() * 0.01:.6f}')\n"
        "open('m.bin', 'wb').write(b'fixed')\n"
    )
    ok(project, "init")
    ok(project, "run", "--name", "job", "--", sys.executable, "job.py")
    ok(project, "models", "register", "m", "--run", "job", "--path", "m.bin")
    verdict = cli(project, "verify", "job")
    assert verdict.returncode == 1
    refused = cli(project, "models", "alias", "m@v1", "production", "--require", "reproduced")
    assert refused.returncode == 1 and "NOT_REPRODUCED" in refused.stderr
    refused = cli(project, "models", "alias", "m@v1", "production", "--require", "within-noise")
    assert refused.returncode == 1 and "--seeds" in refused.stderr


def test_diff_names_changed_tensors_and_run_differences(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(
        "import sys, torch\n"
        "width = int(sys.argv[1])\n"
        "torch.save(torch.nn.Linear(4, width).state_dict(), 'w.pt')\n"
    )
    ok(project, "init")
    ok(project, "run", "--name", "narrow", "--", sys.executable, "train.py", "2")
    ok(project, "run", "--name", "wide", "--", sys.executable, "train.py", "3")
    ok(project, "models", "register", "net", "--run", "narrow", "--path", "w.pt")
    ok(project, "models", "register", "net", "--run", "wide", "--path", "w.pt")
    found = json.loads(ok(project, "models", "diff", "net@v1", "net@v2", "--json"))
    assert [m["path"] for m in found["files"]["modified"]] == ["w.pt"]
    assert {t["tensor"]: (t["a"], t["b"]) for t in found["tensors"]} == {
        "weight": ([[2, 4], "float32"], [[3, 4], "float32"]),
        "bias": ([[2], "float32"], [[3], "float32"]),
    }
    assert "params" in found["runs"]["dimensions"]
    assert found["runs"]["params"]["argv"]["b"][-1] == "3"
    text = ok(project, "models", "diff", "net@v1", "net@v2")
    assert "tensor w.pt:weight" in text and "runs differ in: " in text


def test_python_register_and_get_link_runs(project: Backend, tmp_path: Path) -> None:
    from tests.conftest import run_python

    workdir = Path.cwd()
    made = run_python(
        """
        import lockstep
        with lockstep.start(name="maker") as run:
            open("weights.bin", "wb").write(b"w" * 1000)
            print(lockstep.models.register("m", "weights.bin", aliases=["candidate"]))
        """,
        env=project.env(),
        cwd=workdir,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "m@v1"
    used = run_python(
        """
        import lockstep
        with lockstep.start(name="user") as run:
            path = lockstep.models.get("m@candidate")
            print(path.read_bytes() == b"w" * 1000, path.name)
        """,
        env=project.env(),
        cwd=workdir,
    )
    assert used.returncode == 0, used.stderr
    assert used.stdout.strip() == "True weights.bin"
    outside = run_python(
        "import lockstep\nlockstep.models.register('m', 'weights.bin')\n",
        env=project.env(),
        cwd=workdir,
    )
    assert outside.returncode == 1 and "needs an active run" in outside.stderr
    shown = json.loads(ok(workdir, "models", "show", "m", "--json", env=project.env()))
    assert shown["aliases"] == ["candidate"]
    maker = json.loads(ok(workdir, "show", "maker", "--json", env=project.env()))
    assert [o["path"] for o in maker["outputs"]] == ["weights.bin"]
    assert shown["run"] == maker["id"]
    assert [u["role"] for u in shown["used_by"]] == ["input"]
    user = json.loads(ok(workdir, "show", "user", "--json", env=project.env()))
    assert user["tags"]["model.m"] == "v1"
    assert user["models"] == [{"ref": "m@v1", "role": "input"}]
    assert maker["models"] == [{"ref": "m@v1", "role": "registered"}]
    assert "model m@v1: input" in ok(workdir, "show", "user", env=project.env())
    assert shown["used_by"][0]["run"] == user["id"]


def test_a_command_that_reads_a_registered_file_is_linked_to_the_version(trained: Path) -> None:
    ok(trained, "models", "register", "net", "--run", "train", "--path", "ckpt.pt")
    (trained / "evaluate.py").write_text(
        "import torch\nstate = torch.load('ckpt.pt')\nprint(sorted(state))\n"
    )
    ok(trained, "run", "--name", "eval", "--", sys.executable, "evaluate.py")
    used = json.loads(ok(trained, "models", "show", "net", "--json"))["used_by"]
    evaluation = json.loads(ok(trained, "show", "eval", "--json"))
    assert used == [{"run": evaluation["id"], "role": "input"}]

"""Verdicts on real scripts, through the CLI as a user runs them: no verdict on nothing, every
result judged (printed output, exit status), reruns where the run ran, and honest history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.gitrepo import git, make_repo
from tests.tracking.test_launcher import lockstep, show

PRINT_ONLY_FOREST = textwrap.dedent("""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    X, y = make_classification(n_samples=240, n_features=12, flip_y=0.2, random_state=0)
    clf = RandomForestClassifier(n_estimators=30, random_state=0)
    scores = cross_val_score(clf, X, y, cv=3)
    print("scores", " ".join(f"{s:.4f}" for s in scores))
    print("mean accuracy", f"{scores.mean():.4f}")
""")


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`lockstep ARGS` in cwd with a user's environment (plus env, minus drop)."""
    return lockstep(cwd, *args, env=env, drop=drop, timeout=300)


def verdict(cwd: Path, *args: str, **kw: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = cli(cwd, "verify", *args, "--json", **kw)  # type: ignore[arg-type]
    assert result.returncode in (0, 1, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def run_ok(cwd: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    result = cli(cwd, "run", *args, **kw)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    return result


def test_print_only_script_changed_in_committed_code_is_not_reproduced(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "forest", {"forest.py": PRINT_ONLY_FOREST})
    run_ok(root, "--name", "thirty", "--", sys.executable, "forest.py")
    (root / "forest.py").write_text(PRINT_ONLY_FOREST.replace("n_estimators=30", "n_estimators=3"))
    git(root, "commit", "-qam", "fewer trees")
    run_ok(root, "--name", "three", "--", sys.executable, "forest.py")
    assert show(root, "thirty")["command"]["stdout"]["size"] > 0

    code, result = verdict(root, "three", "--against", "thirty")
    assert code == 1 and result["verdict"] == "NOT_REPRODUCED"
    stdout = next(f for f in result["printed"] if f["name"] == "stdout")
    assert stdout["status"] == "differs" and stdout["first_line"] == 1
    assert "scores" in stdout["detail"]
    # Loose enough a tolerance and the printed scores agree; the verdict follows the numbers.
    loose_code, loose = verdict(root, "three", "--against", "thirty", "--rtol", "10")
    assert loose["verdict"] == "REPRODUCED" and loose_code == 0

    explained = cli(root, "explain", "three", "thirty", "--json")
    assert explained.returncode == 0, explained.stderr
    explanation = json.loads(explained.stdout)
    assert explanation["baseline"] == "A reproduces itself"
    assert [f["factor"] for f in explanation["factors"] if f["reproduces"] == "B"] == ["code"]
    assert explanation["conclusion"].startswith("code: forest.py")

    text = cli(root, "verify", "three", "--against", "thirty")
    assert text.returncode == 1
    assert "NOT_REPRODUCED" in text.stdout and "output stdout" in text.stdout


def test_a_run_with_no_result_is_unverifiable_not_identical(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "quiet", {"quiet.py": "x = sum(range(10))\n"})
    run_ok(root, "--name", "quiet", "--", sys.executable, "quiet.py")
    code, result = verdict(root, "quiet")
    assert code == 3 and result["verdict"] == "UNVERIFIABLE"
    assert any("nothing to compare" in note for note in result["notes"])
    text = cli(root, "verify", "quiet")
    assert text.returncode == 3 and "UNVERIFIABLE" in text.stdout and "log metrics" in text.stdout
    explained = json.loads(cli(root, "explain", "quiet", "quiet", "--json").stdout)
    assert explained["verdict"] == "UNVERIFIABLE" and "no result" in explained["conclusion"]
    assert show(root, "quiet")["verifications"][-1]["verdict"] == "UNVERIFIABLE"


def test_a_failure_never_matches_a_success_of_another_command(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "two",
        {"fails.py": "import sys\nsys.exit('bad config')\n", "works.py": "pass\n"},
    )
    failed = cli(root, "run", "--name", "fails", "--", sys.executable, "fails.py")
    assert failed.returncode == 1
    run_ok(root, "--name", "works", "--", sys.executable, "works.py")
    code, result = verdict(root, "fails", "--against", "works")
    assert code == 1 and result["verdict"] == "NOT_REPRODUCED"
    assert result["status"]["status"] == "differs"
    assert "run A failed with exit code 1" in result["status"]["detail"]
    assert "bad config" in result["status"]["detail"]
    assert any(n.startswith("the runs ran different commands") for n in result["notes"])
    assert show(root, "fails")["verifications"][-1]["kind"] == "comparison"


def outside_reader(tmp_path: Path, script: str) -> tuple[Path, Path]:
    """A file outside the project ("1,2"), and a project whose read.py takes its path."""
    outside = tmp_path / "elsewhere" / "rows.csv"
    outside.parent.mkdir()
    outside.write_text("1,2\n")
    return outside, make_repo(tmp_path / "reads", {"read.py": script})


def test_a_rerun_that_fails_is_reported_with_its_exit_code_and_stderr(tmp_path: Path) -> None:
    outside, root = outside_reader(
        tmp_path, "import sys\nprint(open(sys.argv[1]).read().strip())\n"
    )
    recorded = run_ok(root, "--name", "reads", "--", sys.executable, "read.py", str(outside))
    assert "read from outside the project" in recorded.stderr and str(outside) in recorded.stderr
    assert show(root, "reads")["outside_inputs"][0]["path"] == str(outside)
    outside.unlink()
    code, result = verdict(root, "reads")
    assert code == 1 and result["verdict"] == "NOT_REPRODUCED"
    assert result["status"]["b"].startswith("failed (1)")
    assert "FileNotFoundError" in result["status"]["detail"]
    assert any(f"likely cause: {outside}" in n and "gone" in n for n in result["notes"])


def test_a_changed_outside_input_is_named_as_the_likely_cause(tmp_path: Path) -> None:
    outside, root = outside_reader(
        tmp_path, "import sys\nprint(sum(map(float, open(sys.argv[1]).read().split(','))))\n"
    )
    run_ok(root, "--name", "reads", "--", sys.executable, "read.py", str(outside))
    outside.write_text("1,5\n")
    code, result = verdict(root, "reads")
    assert code == 1
    assert any(
        f"likely cause: {outside}" in n and "changed since the run" in n for n in result["notes"]
    )


SUBDIR_SCRIPT = textwrap.dedent("""
    import random
    text = open("data/corpus.txt").read()
    words = text.split()
    random.shuffle(words)
    open("model.pt", "w").write(" ".join(words))
    print("vocabulary", len(set(words)))
""")


def test_a_script_run_from_a_subdirectory_reruns_there(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "examples",
        {"word_model/main.py": SUBDIR_SCRIPT, ".gitignore": "data/\nmodel.pt\n"},
    )
    (root / "word_model" / "data").mkdir()
    (root / "word_model" / "data" / "corpus.txt").write_text("the cat sat on the mat " * 20)
    assert cli(root, "init").returncode == 0
    sub = root / "word_model"
    run_ok(sub, "--name", "words", "--", sys.executable, "main.py")
    original = show(sub, "words")
    assert original["command"]["cwd"] == "word_model"
    assert [i["path"] for i in original["inputs"]] == ["word_model/data/corpus.txt"]
    assert [o["path"] for o in original["outputs"]] == ["word_model/model.pt"]

    code, result = verdict(sub, "words")
    assert code == 0 and result["verdict"] == "IDENTICAL", result
    reproduction = show(sub, result["against"])
    assert [i["path"] for i in reproduction["inputs"]] == ["word_model/data/corpus.txt"]
    assert [o["path"] for o in reproduction["outputs"]] == ["word_model/model.pt"]
    # A reproduction is a run like any other: its code is the original's, not a temporary tree.
    assert reproduction["code"]["root"] == original["code"]["root"]
    assert reproduction["command"]["project_root"] == original["command"]["project_root"]
    assert cli(sub, "verify", "last").returncode == 0
    second = cli(sub, "verify", "last")
    assert second.returncode == 0 and "IDENTICAL" in second.stdout, second.stderr

    # The data changes: explain blames the data, and A reproduces itself.
    (sub / "data" / "corpus.txt").write_text("a dog ran " * 20)
    run_ok(sub, "--name", "other-words", "--", sys.executable, "main.py")
    explained = json.loads(cli(sub, "explain", "words", "other-words", "--json").stdout)
    assert explained["baseline"] == "A reproduces itself"
    assert explained["conclusion"].startswith("data: word_model/data/corpus.txt modified")


def test_diff_shows_a_long_command_whole(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "args", {"train.py": "import sys\nprint(sys.argv[-1])\n"})
    common = [f"--option_number_{i}=value_{i}" for i in range(8)]
    run_ok(root, "--name", "a", "--", sys.executable, "train.py", *common, "--learning_rate=1e-3")
    run_ok(root, "--name", "b", "--", sys.executable, "train.py", *common, "--learning_rate=2e-3")
    as_json = json.loads(cli(root, "diff", "a", "b", "--json").stdout)
    assert as_json["params"]["argv"]["a"][-1] == "--learning_rate=1e-3"
    assert as_json["params"]["argv"]["b"][-1] == "--learning_rate=2e-3"
    assert "stdout" in as_json["printed"]
    text = cli(root, "diff", "a", "b", env={"COLUMNS": "400"}).stdout
    assert "[--learning_rate=1e-3]" in text and "{+--learning_rate=2e-3+}" in text


def test_verification_history_keeps_reproductions_and_comparisons_apart(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "hist", {"p.py": "import sys\nprint(sys.argv[1])\n"})
    run_ok(root, "--name", "a", "--", sys.executable, "p.py", "1")
    run_ok(root, "--name", "b", "--", sys.executable, "p.py", "2")
    assert cli(root, "verify", "a").returncode == 0
    assert cli(root, "verify", "a", "--against", "b").returncode == 1
    history = show(root, "a")["verifications"]
    assert [(h["kind"], h["verdict"]) for h in history] == [
        ("reproduction", "IDENTICAL"),
        ("comparison", "NOT_REPRODUCED"),
    ]
    shown = cli(root, "show", "a", env={"COLUMNS": "200"}).stdout
    assert "reproductions" in shown and "comparisons" in shown
    assert "NOT_REPRODUCED against b" in shown and "IDENTICAL by rerun" in shown
    report = cli(root, "report", "a").stdout
    reproductions = report.split("## Reproductions")[1].split("## Comparisons")[0]
    comparisons = report.split("## Comparisons with other runs")[1]
    assert "IDENTICAL" in reproductions and "NOT_REPRODUCED" not in reproductions
    assert "NOT_REPRODUCED" in comparisons and "| b |" in comparisons
    page = cli(root, "report", "a", "--format", "html").stdout
    assert "<h2>Comparisons with other runs</h2>" in page and "<table>" in page
    assert "`" not in page.split("<body>")[1]  # Markdown rendered, not shown literally


def test_files_read_then_rewritten_are_inputs_restored_for_the_rerun(tmp_path: Path) -> None:
    resume = textwrap.dedent("""
        import json, os
        state = json.load(open("state.json")) if os.path.exists("state.json") else {"epoch": 0}
        state["epoch"] += 1
        state["loss"] = 1.0 / state["epoch"]
        json.dump(state, open("state.json", "w"))
        print("epoch", state["epoch"], "loss", state["loss"])
    """)
    root = make_repo(tmp_path / "resume", {"train.py": resume, ".gitignore": "state.json\n"})
    run_ok(root, "--name", "first", "--", sys.executable, "train.py")
    run_ok(root, "--name", "resumed", "--", sys.executable, "train.py")
    record = show(root, "resumed")
    assert [i["path"] for i in record["inputs"]] == ["state.json"]
    assert [o["path"] for o in record["outputs"]] == ["state.json"]
    assert record["inputs"][0]["digest"] != record["outputs"][0]["digest"]
    code, result = verdict(root, "resumed")
    assert code == 0 and result["verdict"] == "IDENTICAL", result
    assert json.loads((root / "state.json").read_text())["epoch"] == 2  # untouched here


def test_dated_files_reproduce_with_the_recorded_epoch_or_their_dates_ignored(
    tmp_path: Path,
) -> None:
    plot = textwrap.dedent("""
        import os, time
        def pdf(stamp):
            date = time.strftime("%Y%m%d%H%M%S", time.gmtime(stamp))
            return (f"%PDF-1.4\\n1 0 obj << /CreationDate (D:{date}Z) >> endobj\\n"
                    "2 0 obj << /Length 4 >> stream\\nplot\\nendstream endobj\\n%%EOF\\n").encode()
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
        open("honours_epoch.pdf", "wb").write(pdf(epoch))
        open("clock.pdf", "wb").write(pdf(time.time() + int(os.environ["SHIFT"])))
    """)
    root = make_repo(tmp_path / "plots", {"plot.py": plot, ".gitignore": "*.pdf\n"})
    run_ok(root, "--name", "plots", "--", sys.executable, "plot.py", env={"SHIFT": "0"})
    env = {"SHIFT": "86400"}
    # SHIFT is not a recorded variable: the rerun keeps the verifier's, a day later.
    code, result = verdict(root, "plots", env=env)
    assert code == 0 and result["verdict"] == "IDENTICAL", result
    found = {a["name"]: a for a in result["artifacts"]}
    assert "detail" not in found["honours_epoch.pdf"]  # bitwise: same SOURCE_DATE_EPOCH
    assert "CreationDate" in found["clock.pdf"]["detail"]
    text = cli(root, "verify", "plots", env=env).stdout
    assert "volatile bytes" in text and "clock.pdf" in text


def test_a_variable_of_the_verifiers_shell_does_not_leak_into_the_rerun(tmp_path: Path) -> None:
    script = 'import os\nprint("threads", os.environ.get("OMP_NUM_THREADS", "unset"))\n'
    root = make_repo(tmp_path / "leak", {"t.py": script})
    run_ok(root, "--name", "plain", "--", sys.executable, "t.py", drop=("OMP_NUM_THREADS",))
    verified = cli(root, "verify", "plain", "--json", env={"OMP_NUM_THREADS": "1"})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["verdict"] == "IDENTICAL"
    assert "variable OMP_NUM_THREADS: set here to '1', not in the record" in verified.stderr
    run_ok(root, "--name", "four", "--", sys.executable, "t.py", env={"OMP_NUM_THREADS": "4"})
    again = cli(root, "verify", "four", "--json", env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stdout
    assert "variable OMP_NUM_THREADS: recorded '4', here '1'; the rerun gets '4'" in again.stderr


def test_explain_never_reuses_a_rerun_made_under_other_variables(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os
        data = open("data.txt").read().strip()
        print("result", data, os.environ.get("OMP_NUM_THREADS", "unset"))
    """)
    root = make_repo(tmp_path / "cache", {"t.py": script, ".gitignore": "data.txt\n"})
    (root / "data.txt").write_text("1\n")
    run_ok(root, "--name", "a", "--", sys.executable, "t.py", drop=("OMP_NUM_THREADS",))
    (root / "data.txt").write_text("2\n")
    run_ok(root, "--name", "b", "--", sys.executable, "t.py", drop=("OMP_NUM_THREADS",))
    recipe_digest = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lockstep; from lockstep.reproduce.recipe import Recipe; "
            "print(Recipe.from_record(lockstep.get_run('a').record).digest())",
        ],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A run carrying A's recipe digest but made under a leaked variable: never "A as recorded".
    (root / "data.txt").write_text("1\n")
    run_ok(
        root,
        "--name",
        "leaked",
        "-t",
        f"lockstep.recipe={recipe_digest}",
        "--",
        sys.executable,
        "t.py",
        env={"OMP_NUM_THREADS": "1"},
    )
    explained = cli(root, "explain", "a", "b", "--json", drop=("OMP_NUM_THREADS",))
    assert explained.returncode == 0, explained.stderr
    assert "A as recorded: running" in explained.stderr
    assert "cached run leaked" not in explained.stderr
    result = json.loads(explained.stdout)
    assert result["baseline"] == "A reproduces itself"
    assert result["conclusion"].startswith("data: data.txt modified")


def test_the_exported_dockerfile_runs_through_lockstep_with_the_seed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "docker", {"t.py": "print(1)\n"})
    run_ok(
        root,
        "--name",
        "d",
        "--seed",
        "41",
        "--",
        sys.executable,
        "t.py",
        env={"TF_CLI_CONFIG_FILE": "/home/u/.terraformrc", "TF_DETERMINISTIC_OPS": "1"},
    )
    variables = show(root, "d")["environment"]["variables"]
    assert "TF_CLI_CONFIG_FILE" not in variables and variables["TF_DETERMINISTIC_OPS"] == "1"
    text = cli(root, "env", "export", "d", "--format", "dockerfile").stdout
    cmd = json.loads(next(line for line in text.splitlines() if line.startswith("CMD "))[4:])
    assert cmd[:4] == ["lockstep", "run", "--seed", "41"] and cmd[4] == "--"
    assert cmd[-1] == "t.py"
    assert "TF_CLI_CONFIG_FILE" not in text


@pytest.mark.skipif(os.environ.get("LOCKSTEP_SKIP_TORCH") == "1", reason="torch tests off")
def test_a_script_that_seeds_itself_is_shown_so_and_seed_noise_says_why(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = textwrap.dedent("""
        import torch
        torch.manual_seed(1337)
        print("weight", round(torch.rand(1).item(), 6))
    """)
    root = make_repo(tmp_path / "own", {"train.py": script})
    run_ok(root, "--name", "own", "--seed", "5", "--", sys.executable, "train.py")
    seed = show(root, "own")["seed"]
    assert seed["value"] == 5 and seed["libraries"]["torch"] == 5
    assert seed["script_calls"] == [
        {"call": "torch.manual_seed", "value": "1337", "where": "train.py:3"}
    ]
    shown = cli(root, "show", "own", env={"COLUMNS": "200"}).stdout
    assert "torch.manual_seed" in shown and "1337 at train.py:3" in shown
    code, result = verdict(root, "own", "--seeds", "2")
    assert code == 0
    notes = " ".join(result["seed_notes"])
    assert "the script seeds itself (torch.manual_seed(1337) at train.py:3)" in notes
    assert "every other seed gave exactly the same results" in notes
    text = cli(root, "verify", "own", "--seeds", "2").stdout
    assert "seeds: the script seeds itself" in text


def test_volatile_printed_parts_of_the_users_own_are_masked_from_pyproject(
    tmp_path: Path,
) -> None:
    script = "import uuid\nprint('job', uuid.uuid4().hex, 'a accuracy 0.93')\n"
    root = make_repo(tmp_path / "mask", {"job.py": script})
    # Named "a": a short name is a word of the output, never masked as the run's name.
    run_ok(root, "--name", "a", "--", sys.executable, "job.py")
    code, result = verdict(root, "a")
    assert code == 1 and result["verdict"] == "NOT_REPRODUCED"  # a fresh id every run
    (root / "pyproject.toml").write_text('[tool.lockstep.verify]\nmask = ["job [0-9a-f]{32}"]\n')
    code, result = verdict(root, "a")
    assert code == 0 and result["verdict"] == "IDENTICAL", result
    assert "masked" in result["printed"][0]["detail"]
    (root / "pyproject.toml").write_text('[tool.lockstep.verify]\nmask = ["job [0-9a-f"]\n')
    bad = cli(root, "verify", "a")
    assert bad.returncode == 2 and "is not a regular expression" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_resumed_torch_checkpoint_is_an_input_and_the_rerun_starts_from_it(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    script = textwrap.dedent("""
        import os, torch
        if os.path.exists("ckpt.pt"):
            state = torch.load("ckpt.pt")
        else:
            state = {"w": torch.zeros(3), "epoch": 0}
        state["w"] += torch.randn(3)
        state["epoch"] += 1
        print("epoch", state["epoch"], "w", round(state["w"].sum().item(), 6))
        torch.save(state, "ckpt.pt")
    """)
    root = make_repo(tmp_path / "resume", {"train.py": script, ".gitignore": "ckpt.pt\n"})
    run_ok(root, "--name", "first", "--", sys.executable, "train.py")
    run_ok(root, "--name", "resumed", "--", sys.executable, "train.py")
    record = show(root, "resumed")
    assert [i["path"] for i in record["inputs"]] == ["ckpt.pt"]
    assert record["inputs"][0]["digest"] == show(root, "first")["outputs"][0]["digest"]
    code, result = verdict(root, "resumed")
    assert code == 0 and result["verdict"] == "IDENTICAL", result
    assert result["status"]["status"] == "identical"

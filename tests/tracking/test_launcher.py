"""`lockstep run` end to end: real git repositories, real subprocesses, the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3
import pytest

from tests.conftest import clean_env
from tests.gitrepo import git, make_repo

SEEDED_SCRIPT = """\
import random
import numpy
print(random.random(), numpy.random.rand())
"""


def lockstep(
    project: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    drop: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`lockstep ARGS` in project with a user's environment (plus env, minus drop)."""
    full_env = clean_env()
    full_env.update(env or {})
    for name in drop:
        full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "lockstep", *args],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def show(project: Path, ref: str = "last") -> dict:  # type: ignore[type-arg]
    result = lockstep(project, "show", ref, "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    project = make_repo(
        tmp_path / "project",
        {
            "train.py": SEEDED_SCRIPT,
            ".gitignore": "data/\nout/\n",
        },
    )
    assert lockstep(project, "init").returncode == 0
    return project


def test_same_seed_same_output_recorded_seed_reproduces(repo: Path) -> None:
    first = lockstep(repo, "run", "--seed", "5", "--", sys.executable, "train.py")
    second = lockstep(repo, "run", "--seed", "5", "--", sys.executable, "train.py")
    other = lockstep(repo, "run", "--seed", "6", "--", sys.executable, "train.py")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout != other.stdout
    unseeded = lockstep(repo, "run", "--", sys.executable, "train.py")
    record = show(repo)
    assert record["seed"]["source"] == "drawn"
    drawn = record["seed"]["value"]
    assert record["seed"]["libraries"] == {"random": drawn, "numpy": drawn % 2**32}
    again = lockstep(repo, "run", "--seed", str(drawn), "--", sys.executable, "train.py")
    assert again.stdout == unseeded.stdout


def test_record_holds_command_code_environment_hardware(repo: Path) -> None:
    (repo / "train.py").write_text(SEEDED_SCRIPT + "# tuned\n")
    (repo / "helper.py").write_text("X = 1\n")
    (repo / "requirements.txt").write_text("numpy\n")
    result = lockstep(
        repo,
        "run",
        "--name",
        "full",
        "-e",
        "capture",
        "-p",
        "lr=0.1",
        "-p",
        "layers=[64, 32]",
        "-t",
        "stage=dev",
        "--",
        sys.executable,
        "train.py",
        "--flag",
    )
    assert result.returncode == 0, result.stderr
    record = show(repo, "full")
    assert record["experiment"] == "capture"
    assert record["params"] == {"layers": [64, 32], "lr": 0.1}
    assert record["tags"] == {"stage": "dev"}
    command = record["command"]
    assert command["argv"][1:] == ["train.py", "--flag"] and command["exit_code"] == 0
    assert command["cwd"] == "." and command["python"] is True
    assert command["peak_rss_bytes"] > 1 << 20 and command["duration"] > 0
    code = record["code"]
    assert code["kind"] == "git" and code["dirty"] is True and code["branch"] == "main"
    assert code["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert code["changed"] == ["train.py"]
    untracked = {f["path"]: f for f in code["files"]}
    assert set(untracked) == {"helper.py", "requirements.txt"}
    assert untracked["helper.py"]["digest"] == blake3.blake3(b"X = 1\n").hexdigest()
    # Every byte needed to rebuild the code is in the object store.
    objects = repo / ".lockstep" / "objects" / "blake3"
    diff = (objects / code["diff"]["digest"][:2] / code["diff"]["digest"][2:]).read_bytes()
    assert b"+# tuned" in diff
    environment = record["environment"]
    assert environment["interpreter"]["version"] == ".".join(map(str, sys.version_info[:3]))
    names = {p["name"] for p in environment["packages"]}
    assert {"numpy", "lockstep"} <= names
    assert [f["path"] for f in environment["lock_files"]] == ["requirements.txt"]
    assert record["hardware"]["cpu"]["logical_cores"] == os.cpu_count()
    assert "env" in record["determinism"] and record["determinism"]["requested"] is False
    assert record["determinism"]["numpy"]["blas"]["name"]
    stdout_digest = command["stdout"]["digest"]
    logged = (objects / stdout_digest[:2] / stdout_digest[2:]).read_text()
    assert logged == result.stdout


def test_secret_variables_never_reach_the_store(repo: Path) -> None:
    secret = "s3cr3t-value-that-must-not-leak-91827"
    result = lockstep(
        repo,
        "run",
        "--",
        sys.executable,
        "-c",
        "import os; print('ok')",
        env={
            "MY_API_TOKEN": secret,
            "OMP_NUM_THREADS": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "HF_TOKEN": secret,
        },
    )
    assert result.returncode == 0, result.stderr
    record = show(repo)
    assert record["environment"]["variables"]["OMP_NUM_THREADS"] == "2"
    for path in (repo / ".lockstep").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_inputs_and_outputs_with_digests(repo: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "data.csv").write_text("x,y\n1,2\n")
    (repo / "io.py").write_text(
        textwrap.dedent("""
        import os
        rows = open("data/data.csv").read()
        os.makedirs("out", exist_ok=True)
        with open("out/out.txt", "w") as handle:
            handle.write(rows.upper())
    """)
    )
    result = lockstep(repo, "run", "--", sys.executable, "io.py")
    assert result.returncode == 0, result.stderr
    record = show(repo)
    assert record["inputs"] == [
        {"path": "data/data.csv", "size": 8, "digest": blake3.blake3(b"x,y\n1,2\n").hexdigest()}
    ]
    assert record["outputs"] == [
        {"path": "out/out.txt", "size": 8, "digest": blake3.blake3(b"X,Y\n1,2\n").hexdigest()}
    ]
    # A second run does not count the first run's output as a code change.
    (repo / "out" / "keep").mkdir()
    git(repo, "rm", "-q", "--cached", ".gitignore")
    (repo / ".gitignore").write_text("data/\n")
    lockstep(repo, "run", "--", sys.executable, "io.py")
    code = show(repo)["code"]
    assert "out/out.txt" in code["excluded_outputs"]
    assert "out/out.txt" not in {f["path"] for f in code["files"]}


def test_non_python_command_still_records_code_environment_hardware(repo: Path) -> None:
    result = lockstep(repo, "run", "--", "bash", "-c", "echo hello; exit 3")
    assert result.returncode == 3
    assert result.stdout == "hello\n"
    record = show(repo)
    assert record["status"] == "failed" and "exit code 3" in record["error"]
    assert record["command"]["python"] is False
    assert record["code"]["kind"] == "git"
    assert record["environment"]["packages"]
    assert record["hardware"]["os"]


def test_outside_git_records_source_files(tmp_path: Path) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    (project / "train.py").write_text(SEEDED_SCRIPT)
    (project / "conf.yaml").write_text("lr: 0.1\n")
    (project / "image.png").write_bytes(b"\x89PNG")
    assert lockstep(project, "init").returncode == 0
    result = lockstep(project, "run", "--", sys.executable, "train.py")
    assert result.returncode == 0, result.stderr
    code = show(project)["code"]
    assert code["kind"] == "files"
    assert [f["path"] for f in code["files"]] == ["conf.yaml", "train.py"]


def test_script_using_the_api_attaches_to_the_same_run(repo: Path) -> None:
    (repo / "tracked.py").write_text(
        textwrap.dedent("""
        import lockstep
        with lockstep.start(params={"depth": 3}) as run:
            for step in range(5):
                run.log({"loss": 1.0 / (step + 1)})
            assert lockstep.active_run() is run
    """)
    )
    result = lockstep(repo, "run", "--name", "attached", "--", sys.executable, "tracked.py")
    assert result.returncode == 0, result.stderr
    listing = json.loads(lockstep(repo, "runs", "--json").stdout)
    assert [r["name"] for r in listing] == ["attached"]
    record = show(repo, "attached")
    assert record["status"] == "finished"
    assert record["params"] == {"depth": 3}
    assert record["metric_summaries"]["loss"]["count"] == 5


def test_failure_inside_the_script(repo: Path) -> None:
    (repo / "boom.py").write_text("raise RuntimeError('diverged at step 7')\n")
    result = lockstep(repo, "run", "--", sys.executable, "boom.py")
    assert result.returncode == 1
    record = show(repo)
    assert record["status"] == "failed"
    assert "diverged at step 7" in record["error"]


def test_bad_input(repo: Path) -> None:
    missing = lockstep(repo, "run", "--", "no-such-command-xyz", "arg")
    assert missing.returncode == 127
    assert "command not found: no-such-command-xyz" in missing.stderr
    record = show(repo)
    assert record["status"] == "failed" and record["command"]["exit_code"] == 127
    nothing = lockstep(repo, "run")
    assert nothing.returncode == 2 and "after --" in nothing.stderr
    bad_param = lockstep(repo, "run", "-p", "lr", "--", "true")
    assert bad_param.returncode == 2 and "key=value" in bad_param.stderr
    bad_seed = lockstep(repo, "run", "--seed", "-4", "--", "true")
    assert bad_seed.returncode == 2
    for output in (missing, nothing, bad_param, bad_seed):
        assert "Traceback" not in output.stderr


def start_waiting_run(repo: Path, *, own_group: bool) -> subprocess.Popen[str]:
    """`lockstep run` of a script that sleeps, returned once the script is running."""
    (repo / "wait.py").write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "run", "--", sys.executable, "wait.py"],
        cwd=repo,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_ctrl_c_reaches_the_child_and_the_run_ends_killed(repo: Path) -> None:
    process = start_waiting_run(repo, own_group=True)  # like a terminal job
    os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert show(repo)["status"] == "killed"


def test_sigterm_to_lockstep_is_passed_to_the_child(repo: Path) -> None:
    process = start_waiting_run(repo, own_group=False)
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert time.monotonic() - start < 30
    assert process.returncode == 143
    assert show(repo)["status"] == "killed"


def test_deterministic_flag_reaches_the_child(repo: Path) -> None:
    script = "import os; print(os.environ.get('CUBLAS_WORKSPACE_CONFIG'))"
    result = lockstep(repo, "run", "--deterministic", "--", sys.executable, "-c", script)
    assert result.stdout.strip() == ":4096:8"
    record = show(repo)
    assert record["determinism"]["requested"] is True
    assert record["determinism"]["env"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_env_export(repo: Path, tmp_path: Path) -> None:
    assert lockstep(repo, "run", "--seed", "3", "--", sys.executable, "train.py").returncode == 0
    requirements = lockstep(repo, "env", "export", "last")
    assert requirements.returncode == 0
    import numpy

    assert f"numpy=={numpy.__version__}" in requirements.stdout.splitlines()
    assert "editable install" in requirements.stdout  # lockstep itself, from this checkout
    target = tmp_path / "Dockerfile"
    docker = lockstep(repo, "env", "export", "last", "--format", "dockerfile", "-o", str(target))
    assert docker.returncode == 0
    text = target.read_text()
    assert f"FROM python:{'.'.join(map(str, sys.version_info[:3]))}-slim" in text
    assert 'ENV PYTHONHASHSEED="3"' in text
    assert "CMD [" in text and "train.py" in text


def test_a_killed_lockstep_takes_its_command_along_and_leaves_a_rerunnable_run(
    repo: Path,
) -> None:
    (repo / ".gitignore").write_text("block\nchild.pid\n")
    (repo / "block").write_text("")
    (repo / "job.py").write_text(
        "import os, time\n"
        "open('child.pid', 'w').write(str(os.getpid()))\n"
        "print('ready', flush=True)\n"
        "while os.path.exists('block'):\n"
        "    time.sleep(0.1)\n"
        "print('done')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "run", "--seed", "9", "--", sys.executable, "job.py"],
        cwd=repo,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    child = int((repo / "child.pid").read_text())
    deadline = time.monotonic() + 60
    while "hardware" not in (record := show(repo)):  # the capture is recorded as gathered
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    process.kill()  # SIGKILL: no handler of lockstep's runs
    process.communicate(timeout=30)
    while True:  # the command dies with it
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the command outlived lockstep"
        time.sleep(0.1)
    record = show(repo)
    assert record["status"] == "crashed"
    assert record["command"]["argv"][-1] == "job.py"
    assert record["seed"]["value"] == 9
    assert record["code"]["kind"] == "git" and record["hardware"]["cpu"]
    (repo / "block").unlink()
    rerun = lockstep(repo, "rerun", record["id"])
    assert rerun.returncode == 0, rerun.stderr
    assert "done" in rerun.stdout


LOSES_POINTS = """
import os, resource, lockstep
run = lockstep.active_run()
run.log({"warm": 1.0})
run.flush()
db = os.path.join(os.environ["LOCKSTEP_HOME"], "lockstep.db")
grown = os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0
# The file size limit: no database file may grow by more than 256 KiB from here on.
resource.setrlimit(resource.RLIMIT_FSIZE, (grown + (256 << 10), resource.RLIM_INFINITY))
for step in range(1_000_000):
    run.log({"loss": step * 1e-6}, step=step)
print("logged")
"""


def test_points_that_cannot_be_stored_fail_the_run_and_say_how_many(repo: Path) -> None:
    (repo / "loses.py").write_text(LOSES_POINTS)
    ran = lockstep(repo, "run", "--name", "lossy", "--", sys.executable, "loses.py")
    assert "logged" in ran.stdout  # the program itself succeeded
    assert ran.returncode == 1
    assert "1000000 metric points could not be stored" in ran.stderr
    record = show(repo, "lossy")
    assert record["status"] == "failed"
    assert record["command"]["lost_points"] == 1_000_000
    assert record["error"].startswith("1000000 metric points could not be stored")
    assert "SQL:" not in ran.stderr  # the database's words, not its statements
    verified = lockstep(repo, "verify", "lossy", "--against", "lossy", "--json")
    assert any("lost 1000000 metric points" in n for n in json.loads(verified.stdout)["notes"])


def test_output_that_cannot_be_stored_never_blocks_the_command(repo: Path) -> None:
    import resource

    (repo / "loud.py").write_text(
        "import sys\nfor i in range(80_000):\n    print('x' * 63)\nprint('end', file=sys.stderr)\n"
    )

    def limit_file_size() -> None:  # 1 MiB per file: the 5 MiB of output cannot be stored
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))

    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "lockstep",
            "run",
            "--name",
            "loud",
            "--",
            sys.executable,
            "loud.py",
        ],
        cwd=repo,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.count("x" * 63) == 80_000  # every line still reached the terminal
    assert "could not be stored (File too large)" in process.stderr
    stdout = show(repo, "loud")["command"]["stdout"]
    assert stdout["incomplete"] is True and stdout["lost_bytes"] > 0
    assert stdout["size"] + stdout["lost_bytes"] == 80_000 * 64

"""The cost of capture: gatherers at run start, `lockstep run` overhead, the I/O audit hook.

    python benchmarks/capture.py

Prints JSON lines; benchmarks/run.py puts them in the table.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _median_ms(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _repo(root: Path) -> Path:
    from gitrepo import make_repo

    files: dict[str, str | bytes] = {f"src/module_{i}.py": f"X = {i}\n" for i in range(200)}
    files["train.py"] = "pass\n"
    repo = make_repo(root / "repo", files)
    (repo / "train.py").write_text("pass  # edited\n")
    (repo / "notes.txt").write_text("untracked\n")
    return repo


def gatherers(repo: Path) -> dict[str, float]:
    """git + packages + hardware, as `lockstep run` does before starting the command."""
    from lockstep.capture.git import capture_git
    from lockstep.capture.hardware import capture_hardware
    from lockstep.capture.packages import installed_distributions

    capture_git(repo)
    installed_distributions()
    capture_hardware()  # warm the imports once, as the first call of a process pays them
    return {
        "git_ms": _median_ms(lambda: capture_git(repo), 9),
        "packages_ms": _median_ms(installed_distributions, 9),
        "hardware_ms": _median_ms(capture_hardware, 9),
        "total_ms": _median_ms(
            lambda: (capture_git(repo), installed_distributions(), capture_hardware()), 9
        ),
    }


def run_overhead(repo: Path, script: str, repeat: int = 7) -> dict[str, float]:
    """`lockstep run -- python -c SCRIPT` against plain `python -c SCRIPT`, in a git repo."""
    subprocess.run(
        [sys.executable, "-m", "lockstep", "init"], cwd=repo, check=True, capture_output=True
    )
    lockstep_bin = Path(sys.executable).parent / "lockstep"

    def bare() -> None:
        subprocess.run([sys.executable, "-c", script], cwd=repo, check=True)

    def wrapped() -> None:
        subprocess.run(
            [str(lockstep_bin), "run", "--", sys.executable, "-c", script],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    wrapped()
    bare_ms = _median_ms(bare, repeat)
    wrapped_ms = _median_ms(wrapped, repeat)
    return {"bare_ms": bare_ms, "lockstep_ms": wrapped_ms, "overhead_ms": wrapped_ms - bare_ms}


def audit_hook(opens: int = 20_000) -> dict[str, float]:
    """Per-open cost of the file recorder, in a fresh interpreter."""
    hook = HERE.parent / "src" / "lockstep" / "capture" / "iohook.py"
    code = textwrap.dedent(f"""
        import importlib.util, json, os, tempfile, time
        path = os.path.join(tempfile.mkdtemp(), "f.txt")
        open(path, "w").close()
        def measure():
            start = time.perf_counter()
            for _ in range({opens}):
                open(path).close()
            return (time.perf_counter() - start) / {opens}
        base = min(measure() for _ in range(5))
        spec = importlib.util.spec_from_file_location("iohook", {str(hook)!r})
        module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
        module.install()
        hooked = min(measure() for _ in range(5))
        print(json.dumps({{"open_us": base * 1e6, "open_hooked_us": hooked * 1e6,
                           "hook_us": (hooked - base) * 1e6}}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return dict(json.loads(result.stdout))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        repo = _repo(Path(tmp))
        print(
            json.dumps(
                {
                    "gatherers": gatherers(repo),
                    "run_pass": run_overhead(repo, "pass"),
                    "run_1s": run_overhead(repo, "import time; time.sleep(1)", repeat=5),
                    "audit_hook": audit_hook(),
                }
            )
        )

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_python


def test_seeds_now_and_frameworks_imported_later(tmp_path: Path) -> None:
    code = """
        import random, sys
        import lockstep
        results = lockstep.seed_everything(11)
        assert "numpy" not in sys.modules, "seeding must not import numpy"
        import numpy
        print(random.random(), numpy.random.rand(), sorted(results))
    """
    first = run_python(code, env={}, cwd=tmp_path)
    second = run_python(code, env={}, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "['numpy', 'random']" in first.stdout
    other = run_python(
        code.replace("seed_everything(11)", "seed_everything(12)"), env={}, cwd=tmp_path
    )
    assert other.stdout != first.stdout


def test_seed_defaults_to_the_run_seed(tmp_path: Path) -> None:
    code = "import lockstep; print(lockstep.seed_everything()['random'])"
    assert run_python(code, env={"LOCKSTEP_SEED": "4242"}, cwd=tmp_path).stdout.strip() == "4242"


def test_determinism_state_reads_only_imported_frameworks(tmp_path: Path) -> None:
    code = """
        import sys
        from lockstep.determinism.seeding import determinism_state
        state = determinism_state()
        print(sorted(state), "numpy" in sys.modules, "torch" in sys.modules)
    """
    result = run_python(code, env={}, cwd=tmp_path)
    assert result.stdout.strip() == "['env'] False False", result.stderr

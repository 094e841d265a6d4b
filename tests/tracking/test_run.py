"""The tracking API in-process: logging, params, tags, artifacts, queries, lifecycle."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

import lockstep
from lockstep.core.status import RunStatus
from lockstep.errors import InvalidMetric, RunNotFound, UsageError
from tests.conftest import Backend


def test_log_and_read_back(project: Backend) -> None:
    with lockstep.start(
        experiment="mnist",
        name="first",
        params={"opt": {"lr": 0.1}, "bs": 64},
        tags={"stage": "dev"},
    ) as run:
        for step in range(500):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 500}, step=step)
        assert lockstep.active_run() is run
    assert lockstep.active_run() is None
    stored = lockstep.get_run("first")
    assert stored.status is RunStatus.FINISHED
    assert stored.params == {"bs": 64, "opt.lr": 0.1}
    assert stored.metrics == {"acc": 499 / 500, "loss": 1 / 500}
    assert stored.tags == {"stage": "dev"}
    history = stored.metric_history("loss")
    assert len(history) == 500
    assert history.steps.tolist() == list(range(500))
    assert history.values[0] == 1.0
    assert history.times.dtype == np.float64 and (np.diff(history.times) >= 0).all()


def test_steps_default_to_one_past_the_last(project: Backend) -> None:
    with lockstep.start() as run:
        run.log({"a": 1.0})
        run.log({"a": 2.0})
        run.log({"a": 3.0}, step=10)
        run.log({"a": 4.0})
        assert run.metric_history("a").steps.tolist() == [0, 1, 10, 11]


def test_keys_logged_at_different_rates_keep_their_order(project: Backend) -> None:
    with lockstep.start() as run:
        for step in range(100):
            run.log({"loss": float(step)}, step=step)
            if step % 10 == 0:
                run.log({"loss": float(step) + 0.5, "val": float(step)}, step=step)
    stored = lockstep.get_run("last")
    loss = stored.metric_history("loss")
    assert len(loss) == 110
    assert (np.diff(loss.times) >= 0).all()
    assert loss.values[:3].tolist() == [0.0, 0.5, 1.0]
    assert stored.metric_history("val").steps.tolist() == list(range(0, 100, 10))


def test_numpy_scalars_and_bools_are_numbers(project: Backend) -> None:
    with lockstep.start() as run:
        run.log({"a": np.float32(0.5), "b": np.int64(3), "c": True})
    assert lockstep.get_run("last").metrics == {"a": 0.5, "b": 3.0, "c": 1.0}


@pytest.mark.parametrize("bad", ["0.5", None, [1.0], object()])
def test_non_numeric_metric_is_a_type_error_naming_the_key(project: Backend, bad: object) -> None:
    with lockstep.start() as run:
        with pytest.raises(TypeError, match="'loss'") as caught:
            run.log({"ok": 1.0, "loss": bad})  # type: ignore[dict-item]
        assert isinstance(caught.value, InvalidMetric)
        assert caught.value.key == "loss"


def test_nan_and_inf_are_stored_as_such(project: Backend) -> None:
    with lockstep.start() as run:
        run.log({"x": 1.0})
        run.log({"x": math.inf})
        run.log({"x": math.nan})
    stored = lockstep.get_run("last")
    values = stored.metric_history("x").values
    assert values[1] == math.inf and math.isnan(values[2])
    assert math.isnan(stored.metrics["x"])
    summary = stored.metric_summaries["x"]
    assert summary.min == 1.0 and summary.max == math.inf and summary.count == 3
    assert stored.to_json()["metrics"]["x"] == "NaN"


def test_exception_marks_the_run_failed_with_the_traceback(project: Backend) -> None:
    with pytest.raises(ZeroDivisionError), lockstep.start(name="boom"):
        _ = 1 / 0
    stored = lockstep.get_run("boom")
    assert stored.status is RunStatus.FAILED
    assert stored.error is not None and "ZeroDivisionError" in stored.error


def test_keyboard_interrupt_marks_the_run_killed(project: Backend) -> None:
    with pytest.raises(KeyboardInterrupt), lockstep.start(name="stopped"):
        raise KeyboardInterrupt
    assert lockstep.get_run("stopped").status is RunStatus.KILLED


def test_params_tags_note_and_artifacts(project: Backend, tmp_path: Path) -> None:
    model = Path("model.bin")
    model.write_bytes(b"weights" * 100)
    with lockstep.start(name="full") as run:
        run.log_params({"model": {"depth": 3}}, seed=7)
        run.set_tag("owner", "ana")
        run.set_note("baseline")
        artifact = run.log_artifact(model)
        with pytest.raises(UsageError):
            run.log_artifact(tmp_path / "missing.bin")
    stored = lockstep.get_run("full")
    assert stored.params == {"model.depth": 3, "seed": 7}
    assert stored.tags == {"owner": "ana"}
    assert stored.note == "baseline"
    assert stored.artifacts == (artifact,)
    assert artifact.path == "model.bin" and artifact.size == 700
    import blake3

    assert artifact.digest == blake3.blake3(b"weights" * 100).hexdigest()


def test_query_filter_sort_limit(project: Backend) -> None:
    for lr in (0.001, 0.01, 0.1):
        with lockstep.start(experiment="sweep", params={"lr": lr}) as run:
            run.log({"acc": 1 - lr})
    with lockstep.start(experiment="other", params={"lr": 0.5}):
        pass
    found = lockstep.runs(experiment="sweep", filter="params.lr > 0.005", sort="-metrics.acc")
    assert [r.params["lr"] for r in found] == [0.01, 0.1]
    assert len(lockstep.runs(limit=2)) == 2
    assert len(lockstep.runs()) == 4
    with pytest.raises(UsageError):
        lockstep.runs(filter="params.lr >")


def test_unknown_run(project: Backend) -> None:
    with lockstep.start():
        pass
    with pytest.raises(RunNotFound):
        lockstep.get_run("no-such-run")


def test_lockstep_never_touches_the_global_rngs(project: Backend) -> None:
    random.seed(99)
    np.random.seed(99)
    py_state, np_state = random.getstate(), np.random.get_state()
    with lockstep.start(params={"a": 1}) as run:
        run.log({"x": 1.0})
    lockstep.runs()
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert all(
        np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
        for a, b in zip(np_state, after, strict=True)
    )


def test_finished_runs_are_compacted_into_one_chunk_per_key(project: Backend) -> None:
    from lockstep.tracking.api import open_workspace

    with lockstep.start() as run:
        for step in range(50):
            run.log({"x": float(step)})
            if step % 10 == 0:
                run.flush()
        assert open_workspace().meta.chunk_counts(run.id)["x"] > 1
    assert open_workspace().meta.chunk_counts(run.id) == {"x": 1}
    assert lockstep.get_run("last").metric_history("x").values.tolist() == list(range(50))


def test_a_rejected_call_stores_nothing_partial(project: Backend) -> None:
    with lockstep.start() as run:
        run.log({"a": 1.0, "b": 2.0}, step=0)
        with pytest.raises(InvalidMetric):
            run.log({"a": 5.0, "b": "oops"}, step=1)  # type: ignore[dict-item]
        run.log({"a": 3.0, "b": 4.0}, step=2)
        assert run.metric_history("a").values.tolist() == [1.0, 3.0]
        assert run.metric_history("b").steps.tolist() == [0, 2]


def test_bad_keys_and_steps_are_usage_errors(project: Backend) -> None:
    with lockstep.start() as run:
        with pytest.raises(UsageError):
            run.log({"": 1.0})
        with pytest.raises(UsageError):
            run.log({"a": 1.0}, step=1.5)  # type: ignore[arg-type]
        run.log({"a": 1.0}, step=np.int64(4))  # type: ignore[arg-type]
        assert run.metric_history("a").steps.tolist() == [4]


@pytest.mark.parametrize("step", [2**63, -(2**63) - 1, 10**30])
def test_a_step_out_of_range_is_refused_and_poisons_nothing(project: Backend, step: int) -> None:
    with lockstep.start() as run:
        run.log({"a": 1.0, "b": 2.0}, step=0)
        with pytest.raises(UsageError, match=r"step .* of 'a', 'b' is out of range.*2\*\*63"):
            run.log({"a": 5.0, "b": 6.0}, step=step)
        run.log({"a": 3.0}, step=2)
        run.log({"a": 4.0, "b": 7.0}, step=2**63 - 1)
        assert run.metric_history("a").values.tolist() == [1.0, 3.0, 4.0]
        assert run.metric_history("b").steps.tolist() == [0, 2**63 - 1]
        run_id = run.id
    assert lockstep.get_run(run_id).status is RunStatus.FINISHED


def test_starting_a_run_on_a_full_store_raises_lockstep_s_own_error(tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    from tests.conftest import clean_env

    script = textwrap.dedent("""
        import os, resource, lockstep
        from lockstep.errors import StoreError
        lockstep.start(name="first").finish()
        db = os.path.join(os.environ["LOCKSTEP_HOME"], "lockstep.db")
        sizes = [os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p)]
        resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes), resource.RLIM_INFINITY))
        try:
            with lockstep.start(params={f"p{i}": "x" * 4000 for i in range(200)}):
                pass
        except StoreError as exc:
            print("refused:", str(exc).splitlines()[0])
    """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=clean_env(LOCKSTEP_HOME=str(tmp_path / "store")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: cannot record a new run in sqlite:"), result.stdout
    assert "check the disk space" in result.stdout


def test_a_large_flush_is_stored_in_bounded_parts(tmp_path: Path) -> None:
    from lockstep.core.ids import new_run_id
    from lockstep.meta.store import MetaStore
    from lockstep.tracking.history import MetricHistory
    from lockstep.tracking.writer import MAX_BATCH_POINTS, MetricWriter

    assert not hasattr(MetaStore, "batch_points")  # the local store takes the default

    meta = MetaStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    run_id = new_run_id()
    meta.create_run(
        run_id=run_id, name="r", experiment="e", start_time=1.0, host="h", pid=1, pid_start=None
    )
    writer = MetricWriter(meta, run_id, flush_interval=3600, heartbeat_interval=3600)
    keys = [f"k{i}" for i in range(10)]
    steps = 3 * MAX_BATCH_POINTS // len(keys)
    for step in range(steps):
        writer.buffer.add(dict.fromkeys(keys, float(step)), step)
    assert writer.flush() == steps * len(keys)
    # Three batches of MAX_BATCH_POINTS, each one chunk per key.
    assert meta.chunk_counts(run_id) == dict.fromkeys(keys, 3)
    series = MetricHistory.from_chunks("k3", meta.metric_chunks(run_id, "k3"))
    assert (series.steps == np.arange(steps)).all()
    assert meta.get_run(run_id).metrics["k3"].count == steps
    writer.close()
    meta.close()

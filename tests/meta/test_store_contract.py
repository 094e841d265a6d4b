"""The metadata store contract, run against SQLite and (when configured) PostgreSQL, each
directly and over HTTP through a real `lockstep server`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest

from lockstep.core.ids import new_run_id
from lockstep.core.query import parse_filter, parse_sort
from lockstep.core.records import Artifact, MetricSummary
from lockstep.core.status import RunStatus
from lockstep.errors import AmbiguousRunRef, InvalidRunRef, RunNotFound, UsageError
from lockstep.meta.shapes import MetricColumns
from lockstep.meta.store import MetaStore
from tests.conftest import Backend


@pytest.fixture(params=["sql", "http"])
def store(request: pytest.FixtureRequest, backend: Backend) -> Iterator[MetaStore]:
    backend.store_dir.mkdir(parents=True, exist_ok=True)
    if request.param == "sql":
        meta = MetaStore.open(backend.meta_url)
        yield meta
        meta.close()
        return
    from lockstep.remote.meta import HttpMetaStore
    from tests.serverproc import served

    with served(backend.store_dir, "--db", backend.meta_url) as url:
        client = HttpMetaStore.open(url)
        yield client  # type: ignore[misc]
        client.close()


def make_run(
    store: MetaStore,
    *,
    name: str = "r",
    experiment: str = "exp",
    params: dict[str, object] | None = None,
    tags: dict[str, str] | None = None,
    start: float | None = None,
) -> str:
    run_id = new_run_id()
    store.create_run(
        run_id=run_id,
        name=name,
        experiment=experiment,
        start_time=start or time.time(),
        host="h",
        pid=1,
        pid_start=None,
        params=params,
        tags=tags,
    )
    return run_id


def add_metric(store: MetaStore, run_id: str, key: str, values: list[float], seq: int = 0) -> None:
    steps = np.arange(len(values), dtype="<i8")
    vals = np.asarray(values, dtype="<f8")
    times = np.full(len(values), time.time(), dtype="<f8")
    finite = vals[~np.isnan(vals)]
    summary = MetricSummary(
        key=key,
        last=float(vals[-1]),
        last_step=int(steps[-1]),
        min=float(finite.min()) if finite.size else math.nan,
        max=float(finite.max()) if finite.size else math.nan,
        count=len(values),
    )
    columns = MetricColumns(
        key=key,
        steps=steps.tobytes(),
        values=vals.tobytes(),
        times=times.tobytes(),
        count=len(values),
        first_step=0,
        last_step=int(steps[-1]),
    )
    store.append_metrics(run_id, [columns], {key: seq}, [summary], heartbeat_at=time.time())


def test_create_and_read_back(store: MetaStore) -> None:
    run_id = make_run(
        store,
        name="alpha",
        params={"opt": {"lr": 0.1}, "bs": 32, "flag": True},
        tags={"stage": "dev"},
    )
    record = store.get_run(run_id)
    assert record.name == "alpha"
    assert record.experiment == "exp"
    assert record.status is RunStatus.RUNNING
    assert record.params == {"bs": 32, "flag": True, "opt.lr": 0.1}
    assert type(record.params["bs"]) is int and type(record.params["flag"]) is bool
    assert record.tags == {"stage": "dev"}


def test_lifecycle_final_status_is_kept(store: MetaStore) -> None:
    run_id = make_run(store)
    store.finish_run(run_id, RunStatus.FAILED, time.time(), error="Traceback: boom")
    store.finish_run(run_id, RunStatus.FINISHED, time.time())  # already final: ignored
    record = store.get_run(run_id)
    assert record.status is RunStatus.FAILED
    assert record.error == "Traceback: boom"
    assert record.end_time is not None


def test_metrics_chunks_and_summaries(store: MetaStore) -> None:
    run_id = make_run(store)
    add_metric(store, run_id, "loss", [3.0, 2.0, math.nan], seq=0)
    add_metric(store, run_id, "acc", [0.5, math.inf], seq=0)
    chunks = store.metric_chunks(run_id, "loss")
    assert len(chunks.values) == 1
    values = np.frombuffer(chunks.values[0], dtype="<f8")
    assert values[0] == 3.0 and math.isnan(values[2])
    record = store.get_run(run_id)
    assert math.isnan(record.metrics["loss"].last)
    assert record.metrics["loss"].min == 2.0
    assert record.metrics["loss"].count == 3
    assert record.metrics["acc"].last == math.inf
    seqs, summaries = store.metric_state(run_id)
    assert seqs == {"loss": 1, "acc": 1}
    assert summaries["loss"].max == 3.0


def test_resolve_by_id_prefix_name_and_last(store: MetaStore) -> None:
    first = make_run(store, name="first", start=1000.0)
    second = make_run(store, name="second", start=2000.0)
    assert store.resolve(first) == first
    assert store.resolve(first.upper()) == first
    assert store.resolve("first") == first
    assert store.resolve("last") == second
    assert store.resolve(second[:20]) == second
    with pytest.raises(InvalidRunRef):
        store.resolve(first[:3])
    with pytest.raises(RunNotFound):
        store.resolve("nope-nope")


def test_ambiguous_prefix_and_name_list_candidates(store: MetaStore) -> None:
    a = make_run(store, name="twin")
    b = make_run(store, name="twin")
    with pytest.raises(AmbiguousRunRef) as caught:
        store.resolve("twin")
    assert set(caught.value.candidates) == {a, b}
    common = 0
    while a[common] == b[common]:
        common += 1
    # Ids made in the same second share their time prefix: far more than 4 characters.
    assert common >= 4
    with pytest.raises(AmbiguousRunRef):
        store.resolve(a[:common])


def test_search_filter_and_sort(store: MetaStore) -> None:
    ids = {}
    for i, lr in enumerate([0.001, 0.01, 0.1, 1.0]):
        ids[lr] = make_run(
            store,
            name=f"r{i}",
            params={"lr": lr, "opt": "adam" if i % 2 else "sgd"},
            tags={"stage": "prod" if i >= 2 else "dev"},
            start=1000.0 + i,
        )
        add_metric(store, ids[lr], "acc", [0.1, 0.5 + i / 10])

    def names(filter_text: str = "", sort: str = "", **kw: object) -> list[str]:
        found = store.search(where=parse_filter(filter_text), sort=parse_sort(sort), **kw)  # type: ignore[arg-type]
        return [r.name for r in found]

    assert names() == ["r3", "r2", "r1", "r0"]  # newest first
    assert names("params.lr > 0.01", "-metrics.acc") == ["r3", "r2"]
    assert names("params.lr >= 0.01 and metrics.acc < 0.75", "params.lr") == ["r1", "r2"]
    assert names("params.opt = 'adam' or tags.stage = 'prod'", "name") == ["r1", "r2", "r3"]
    assert names("not params.opt = 'adam'", "name") == ["r0", "r2"]
    assert names("params.opt in ('adam', 'nope')", "name") == ["r1", "r3"]
    assert names("name like 'r%' and status = 'running'", "-name", limit=2) == ["r3", "r2"]
    assert names("params.missing is null", "name") == ["r0", "r1", "r2", "r3"]
    assert names("metrics.acc > 0.55", "metrics.acc") == ["r1", "r2", "r3"]
    assert names("experiment = 'exp' and start_time > 1001.5", "start_time") == ["r2", "r3"]
    assert store.count(where=parse_filter("params.lr < 0.05")) == 2
    assert store.search(experiment="other") == []
    with pytest.raises(UsageError):
        store.search(where=parse_filter("metrics.acc > 'high'"))


def test_nan_metrics_sort_last(store: MetaStore) -> None:
    good = make_run(store, name="good")
    bad = make_run(store, name="bad")
    add_metric(store, good, "acc", [0.9])
    add_metric(store, bad, "acc", [math.nan])
    for sort in ("-metrics.acc", "metrics.acc"):
        assert [r.name for r in store.search(sort=parse_sort(sort))] == ["good", "bad"]


def test_params_tags_notes_sections_artifacts(store: MetaStore) -> None:
    run_id = make_run(store)
    store.log_params(run_id, {"extra": {"depth": 4}})
    store.log_params(run_id, {"extra.depth": 5})  # overwrite
    store.set_tags(run_id, {"a": "1", "b": 2})
    store.delete_tag(run_id, "a")
    store.set_note(run_id, "first try")
    store.set_sections(run_id, {"command": {"argv": ["python", "x.py"]}})
    store.add_artifacts(run_id, [Artifact(path="model.pt", digest="ab" * 32, size=10)])
    record = store.get_run(run_id)
    assert record.params == {"extra.depth": 5}
    assert record.tags == {"b": "2"}
    assert record.note == "first try"
    assert record.sections == {"command": {"argv": ["python", "x.py"]}}
    assert record.artifacts[0].path == "model.pt"
    assert record.to_json()["command"] == {"argv": ["python", "x.py"]}


def test_delete_removes_everything(store: MetaStore) -> None:
    run_id = make_run(store, params={"a": 1}, tags={"t": "v"})
    add_metric(store, run_id, "loss", [1.0])
    store.delete_run(run_id)
    with pytest.raises(RunNotFound):
        store.get_run(run_id)
    assert store.metric_chunks(run_id, "loss").values == []


def test_compaction_replaces_chunks_atomically(store: MetaStore) -> None:
    run_id = make_run(store)
    add_metric(store, run_id, "loss", [1.0, 2.0], seq=0)
    add_metric(store, run_id, "loss", [3.0], seq=1)
    assert store.chunk_counts(run_id) == {"loss": 2}
    chunks = store.metric_chunks(run_id, "loss")
    merged = MetricColumns(
        key="loss",
        steps=b"".join(chunks.steps),
        values=b"".join(chunks.values),
        times=b"".join(chunks.times),
        count=3,
        first_step=0,
        last_step=0,
    )
    store.replace_metric_chunks(run_id, "loss", [merged])
    assert store.chunk_counts(run_id) == {"loss": 1}
    assert np.frombuffer(store.metric_chunks(run_id, "loss").values[0]).tolist() == [1, 2, 3]


def test_compact_metrics_merges_where_the_store_is(store: MetaStore) -> None:
    run_id = make_run(store)
    add_metric(store, run_id, "loss", [1.0, 2.0], seq=0)
    add_metric(store, run_id, "loss", [3.0], seq=1)
    add_metric(store, run_id, "acc", [0.5], seq=0)
    store.compact_metrics(run_id)
    assert store.chunk_counts(run_id) == {"loss": 1, "acc": 1}
    assert np.frombuffer(store.metric_chunks(run_id, "loss").values[0]).tolist() == [1, 2, 3]
    assert store.metric_state(run_id)[0] == {"loss": 1, "acc": 1}


def test_live_runs_and_heartbeat(store: MetaStore) -> None:
    run_id = make_run(store)
    store.heartbeat(run_id, 12345.0)
    live = {r.id: r for r in store.live_runs()}
    assert live[run_id].heartbeat_at == 12345.0
    store.finish_run(run_id, RunStatus.FINISHED, time.time())
    assert run_id not in {r.id for r in store.live_runs()}


def test_experiments_are_created_once(store: MetaStore) -> None:
    make_run(store, experiment="a")
    make_run(store, experiment="a")
    make_run(store, experiment="b")
    assert [e.name for e in store.experiments()] == ["a", "b"]


def test_values_come_back_bit_exact(store: MetaStore) -> None:
    awkward = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3, math.inf, -math.inf]
    run_id = make_run(store, params={"third": 1 / 3, "sum": 0.1 + 0.2})
    for i, value in enumerate(awkward):
        add_metric(store, run_id, f"m{i}", [value])
    for record in (store.get_run(run_id), store.search()[0]):
        assert record.params == {"sum": 0.1 + 0.2, "third": 1 / 3}
        for i, value in enumerate(awkward):
            summary = record.metrics[f"m{i}"]
            assert (summary.last, summary.min, summary.max) == (value, value, value)


@pytest.mark.parametrize(
    "sort",
    [
        *("-metrics.acc", "metrics.acc", "-params.lr", "tags.t", "-metrics.acc,name"),
        *("", "name", "-duration", "status,-name"),
    ],
)
def test_limited_sort_matches_the_full_sort(store: MetaStore, sort: str) -> None:
    """The index-walking path used with a limit, and the id-first path of deep pages
    sorted by attributes, order exactly like the full sort."""
    for i in range(12):
        run_id = make_run(
            store,
            name=f"r{i % 5}",
            params={"lr": i % 4} if i % 3 else {},
            tags={"t": str(i % 2)} if i % 4 else {},
            start=1000.0 + i,
        )
        if i % 5:
            add_metric(store, run_id, "acc", [math.nan if i == 7 else float(i % 3)])
    where = parse_filter("start_time > 1000.5")
    order = parse_sort(sort) if sort else []
    full = [r.id for r in store.search(where=where, sort=order)]
    assert len(full) == 11
    for limit, offset in ((3, 0), (5, 4), (20, 0), (4, 9)):
        page = store.search(where=where, sort=order, limit=limit, offset=offset)
        assert [r.id for r in page] == full[offset : offset + limit]

"""The server through real HTTP: lockstep's own client against it, and hostile requests."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import clean_env
from tests.serverproc import RUNS, served
from tests.tracking.test_launcher import lockstep


def client_env(url: str) -> dict[str, str]:
    return {"LOCKSTEP_TRACKING_URI": url}


def test_a_run_logged_through_the_server_reads_back_from_a_fresh_directory(
    server: str, tmp_path: Path
) -> None:
    writer = tmp_path / "writer"
    writer.mkdir()
    code = (
        "import lockstep\n"
        "with lockstep.start(name='far', params={'lr': 0.1}, tags={'team': 'a'}) as run:\n"
        "    for step in range(5000):\n"
        "        run.log({'loss': 1 / (step + 1), 'acc': step / 5000}, step=step)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=writer,
        env=clean_env(**client_env(server)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reader = tmp_path / "reader"
    reader.mkdir()
    listed = lockstep(reader, "runs", "--json", "-f", "params.lr > 0.01", env=client_env(server))
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert run["name"] == "far" and run["status"] == "finished"
    assert run["metrics"] == {"loss": 1 / 5000, "acc": 4999 / 5000}
    shown = json.loads(lockstep(reader, "show", "far", "--json", env=client_env(server)).stdout)
    assert shown["tags"] == {"team": "a"}
    series = json.loads(
        lockstep(reader, "metrics", "far", "loss", "--json", env=client_env(server)).stdout
    )
    assert len(series["steps"]) == 5000
    assert not (reader / ".lockstep" / "lockstep.db").exists()  # nothing stored locally


def test_a_batch_sent_twice_is_stored_once(server: str) -> None:
    from lockstep.core.ids import new_run_id
    from lockstep.core.records import MetricSummary
    from lockstep.meta.shapes import MetricColumns
    from lockstep.remote.meta import HttpMetaStore

    store = HttpMetaStore.open(server)
    run_id = new_run_id()
    store.create_run(
        run_id=run_id, name="r", experiment="e", start_time=1.0, host="h", pid=1, pid_start=None
    )

    def batch(seq: int, values: list[float]) -> None:
        steps = np.arange(seq * 10, seq * 10 + len(values), dtype="<i8")
        columns = MetricColumns(
            key="loss",
            steps=steps.tobytes(),
            values=np.asarray(values, dtype="<f8").tobytes(),
            times=np.zeros(len(values), dtype="<f8").tobytes(),
            count=len(values),
            first_step=int(steps[0]),
            last_step=int(steps[-1]),
        )
        summary = MetricSummary(
            key="loss", last=values[-1], last_step=int(steps[-1]), min=0.0, max=9.0, count=seq + 1
        )
        store.append_metrics(run_id, [columns], {"loss": seq}, [summary], heartbeat_at=2.0)

    try:
        batch(0, [3.0, 2.0])
        batch(1, [1.0])
        batch(0, [3.0, 2.0])  # a retry of the first, after the second arrived
        record = store.get_run(run_id)
        chunks = store.metric_chunks(run_id, "loss")
    finally:
        store.close()
    assert record.metrics["loss"].last == 1.0  # the summary did not step back
    assert len(chunks.values) == 2


def test_history_is_downsampled_without_losing_spikes(server: str, tmp_path: Path) -> None:
    code = (
        "import lockstep\n"
        "with lockstep.start(name='spiky') as run:\n"
        "    for step in range(100_000):\n"
        "        run.log({'loss': 100.0 if step == 77_777 else 1.0}, step=step)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(**client_env(server)),
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    runs = httpx.get(f"{server}{RUNS}").json()["runs"]
    run_id = runs[0]["id"]
    found = httpx.get(
        f"{server}{RUNS}/{run_id}/history",
        params={"key": "loss", "max_points": 200},
    ).json()
    assert found["points"] == 100_000
    assert len(found["steps"]) <= 200
    assert 77_777 in found["steps"] and max(found["values"]) == 100.0


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", RUNS + "/..%2F..%2Fetc", {}, 404),
        ("GET", RUNS + "/not-a-run-id", {}, 404),
        (
            "GET",
            RUNS,
            {"params": {"filter": "name = 'x'; DROP TABLE runs"}},
            400,
        ),
        (
            "GET",
            RUNS,
            {"params": {"filter": "params.x = 1 or 1=1 --"}},
            400,
        ),
        ("GET", RUNS, {"params": {"sort": "-metrics.acc; DELETE"}}, 400),
        (
            "POST",
            RUNS,
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
        ),
        ("POST", RUNS, {"json": {"id": "x" * 26}}, 400),
    ],
)
def test_hostile_requests_are_refused_with_a_reason(
    server: str,
    method: str,
    path: str,
    kwargs: dict,
    status: int,  # type: ignore[type-arg]
) -> None:
    response = httpx.request(method, f"{server}{path}", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert httpx.get(f"{server}/health").status_code == 200  # and the server still answers


def test_hostile_metric_and_artifact_bodies(server: str) -> None:
    from lockstep.core.ids import new_run_id

    run_id = new_run_id()
    created = httpx.post(
        f"{server}{RUNS}",
        json={"id": run_id, "name": "r", "experiment": "e", "start_time": 1, "host": "h", "pid": 1},
    )
    assert created.status_code == 201
    traversal = httpx.post(
        f"{server}{RUNS}/{run_id}/artifacts",
        json={"artifacts": [{"path": "../../etc/passwd", "digest": "a" * 64, "size": 1}]},
    )
    assert traversal.status_code == 400 and "artifact path" in traversal.json()["error"]
    not_digest = httpx.post(
        f"{server}{RUNS}/{run_id}/artifacts",
        json={"artifacts": [{"path": "m.pt", "digest": "../x", "size": 1}]},
    )
    assert not_digest.status_code == 400
    bomb = gzip.compress(b"[" + b"0," * (40 << 20) + b"0]")  # small compressed, huge inflated
    inflated = httpx.post(
        f"{server}{RUNS}/{run_id}/metrics",
        content=bomb,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert inflated.status_code == 400 and "decompressed" in inflated.json()["error"]
    lying = httpx.post(
        f"{server}{RUNS}/{run_id}/metrics",
        json={
            "columns": [
                {
                    "key": "k",
                    "steps": "AAAA",
                    "values": "AAAA",
                    "times": "AAAA",
                    "count": 5,
                    "first_step": 0,
                    "last_step": 4,
                }
            ],
            "seqs": {"k": 0},
            "summaries": [],
            "heartbeat_at": 1,
        },
    )
    assert lying.status_code == 400
    assert httpx.get(f"{server}{RUNS}/{run_id}/chunk-counts").json() == {}
    for path, body in (
        ("finish", {"status": "exploded", "end_time": 1}),
        ("finish", {"status": "finished", "end_time": "soon"}),
        ("tags", {"tags": {"k" * 300: "v"}}),
        ("params", {"params": ["not", "an", "object"]}),
        ("sections", {"sections": {"s" * 65: {}}}),
    ):
        refused = httpx.post(f"{server}{RUNS}/{run_id}/{path}", json=body)
        assert refused.status_code == 400, (path, body, refused.text)
        assert refused.json()["kind"] == "UsageError"
    assert httpx.get(f"{server}{RUNS}/{run_id}").json()["status"] == "running"
    chunked = httpx.post(  # no content-length: still bounded, still answered
        f"{server}{RUNS}/{run_id}/tags",
        content=iter([b'{"tags": ', b'{"a": "1"}}']),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 204
    unicode_name = httpx.post(f"{server}{RUNS}/{run_id}/tags", json={"tags": {"ключ": "値 ✓"}})
    assert unicode_name.status_code == 204
    assert httpx.get(f"{server}{RUNS}/{run_id}").json()["tags"] == {
        "a": "1",
        "ключ": "値 ✓",
    }


def test_search_pages_by_token(server: str) -> None:
    from lockstep.core.ids import new_run_id

    for n in range(7):
        created = httpx.post(
            f"{server}{RUNS}",
            json={
                "id": new_run_id(),
                "name": f"r{n}",
                "experiment": "pages",
                "start_time": float(n),
                "host": "h",
                "pid": 1,
                "params": {"n": n},
            },
        )
        assert created.status_code == 201
    query = {"experiment": "pages", "filter": "params.n >= 1", "sort": "params.n"}
    names, token = [], None
    while True:
        page = httpx.get(
            f"{server}{RUNS}",
            params={**query, "limit": 4, **({"page_token": token} if token else {})},
        ).json()
        names += [r["name"] for r in page["runs"]]
        token = page.get("next_page_token")
        if token is None:
            break
    assert names == [f"r{n}" for n in range(1, 7)]
    first = httpx.get(f"{server}{RUNS}", params={**query, "limit": 2}).json()["next_page_token"]
    reused = httpx.get(
        f"{server}{RUNS}", params={**query, "sort": "-params.n", "limit": 2, "page_token": first}
    )
    assert reused.status_code == 400 and "page_token" in reused.json()["error"]
    garbage = httpx.get(f"{server}{RUNS}", params={**query, "limit": 2, "page_token": "%%%"})
    assert garbage.status_code == 400


def test_the_openapi_document_describes_the_api(server: str) -> None:
    spec = httpx.get(f"{server}/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "lockstep"
    for path in ("/runs", "/runs/{run_id}/metrics", "/runs/{run_id}/history", "/tokens"):
        assert "/api/v1/projects/{project}" + path in spec["paths"]


def test_a_server_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    from tests.serverproc import free_port

    result = lockstep(tmp_path, "runs", env=client_env(f"http://127.0.0.1:{free_port()}"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the lockstep server" in lines[0]


def test_store_maintenance_through_a_server_says_where_to_run_it(
    server: str, tmp_path: Path
) -> None:
    for args in (["gc"], ["fsck"]):
        result = lockstep(tmp_path, *args, env=client_env(server))
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "where the server runs" in lines[0], (args, result.stderr)


def test_listening_beyond_loopback_needs_insecure(tmp_path: Path) -> None:
    refused = lockstep(tmp_path, "server", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert "without authentication" in refused.stderr
    bad = lockstep(tmp_path, "runs", env={"LOCKSTEP_TRACKING_URI": "ftp://example"})
    assert bad.returncode == 2 and "http:// or https://" in bad.stderr


def test_run_verify_and_diff_against_the_server(server: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "job.py").write_text(
        "import random\nprint(f'acc {random.random():.6f}')\nopen('out.txt', 'w').write('done')\n"
    )
    env = client_env(server)
    ran = lockstep(
        project, "run", "--name", "job", "--seed", "3", "--", sys.executable, "job.py", env=env
    )
    assert ran.returncode == 0, ran.stderr
    verified = lockstep(project, "verify", "job", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "\nIDENTICAL  reproduction of job" in verified.stdout
    runs = httpx.get(f"{server}{RUNS}").json()["runs"]
    assert {r["name"] for r in runs} >= {"job"} and len(runs) == 2  # the run and its rerun
    differs = lockstep(project, "diff", "job", "last", env=env)
    assert differs.returncode == 0 and "do not differ" in differs.stdout
    # The metadata is on the server only; the local store holds objects and caches.
    assert not (project / ".lockstep" / "lockstep.db").exists()


def test_prometheus_metrics_and_the_access_log(tmp_path: Path) -> None:
    from lockstep.core.ids import new_run_id

    home = tmp_path / "served"
    home.mkdir()
    with served(home) as url:
        run_id = new_run_id()
        httpx.post(
            f"{url}{RUNS}",
            json={
                "id": run_id,
                "name": "r",
                "experiment": "e",
                "start_time": 1,
                "host": "h",
                "pid": 1,
            },
        )
        httpx.get(f"{url}{RUNS}/{run_id}")
        httpx.get(f"{url}{RUNS}/{new_run_id()}")  # a 404
        text = httpx.get(f"{url}/metrics").text
    assert (
        'lockstep_requests_total{method="GET",'
        'route="/api/v1/projects/{project}/runs/{run_id}",status="200"} 1.0' in text
    )
    assert 'route="/api/v1/projects/{project}/runs/{run_id}",status="404"} 1.0' in text
    assert "lockstep_request_seconds_bucket" in text
    logged = [
        json.loads(line)
        for line in next(home.glob("server-*.log")).read_text().splitlines()
        if line.startswith("{")
    ]
    answered = [(e["method"], e["route"], e["status"]) for e in logged]
    assert ("POST", "/api/v1/projects/{project}/runs", 201) in answered
    assert ("GET", "/api/v1/projects/{project}/runs/{run_id}", 200) in answered
    assert ("GET", "/api/v1/projects/{project}/runs/{run_id}", 404) in answered
    assert all({"time", "path", "ms", "bytes", "client"} <= e.keys() for e in logged)


def test_a_store_whose_config_names_a_server_is_served_from_its_own_database(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / ".lockstep").mkdir(parents=True)
    (project / ".lockstep" / "config.toml").write_text('[server]\nurl = "http://127.0.0.1:9"\n')
    with served(project) as url:
        assert httpx.get(f"{url}/health").json()["ok"]
    started = next(project.glob("server-*.log")).read_text()
    assert f"serving sqlite:///{project}/.lockstep/lockstep.db" in started, started


_BODY_KEYS = [
    "key", "steps", "values", "times", "count", "first_step", "last_step", "digests", "user",
    "role", "upload_id", "parts", "status", "end_time", "now", "note", "sections", "tags",
    "params", "artifacts", "columns", "seqs", "summaries", "heartbeat_at", "chunks", "paths",
    "path", "digest", "size", "kind", "error",
]  # fmt: skip


def _random_body(rng: object, depth: int = 0) -> object:
    import random

    assert isinstance(rng, random.Random)
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 6:
        return [_random_body(rng, depth + 1) for _ in range(2)]
    if kind == 7:
        return {rng.choice(_BODY_KEYS): _random_body(rng, depth + 1) for _ in range(3)}
    if kind == 8:
        b64 = "AAAAAAAAAAA="
        column = {"key": "k", "steps": b64, "values": b64, "times": b64, "count": 1}
        return {**column, "first_step": 0, "last_step": 0}
    leaves = [None, rng.choice([0, -1, 2**70, 1e308]), rng.choice(["", "\x00", "%%"]), True]
    return [*leaves, "a" * 64, [1, 2]][kind]


def test_random_bodies_never_fail_the_server(server: str) -> None:
    """Bodies of every shape on every write route: refusals, never a server error (it
    found metric batches whose seqs were not an object)."""
    import random

    from lockstep.core.ids import new_run_id

    rng = random.Random(5)
    run_id = new_run_id()
    started = {"id": run_id, "name": "f", "experiment": "e", "start_time": 1.0, "host": "h"}
    assert httpx.post(f"{server}{RUNS}", json={**started, "pid": 1}).status_code == 201
    session = "ab" * 16
    routes = [
        ("POST", f"{RUNS}/{run_id}/metrics"), ("PUT", f"{RUNS}/{run_id}/chunks?key=k"),
        ("POST", f"{RUNS}/{run_id}/artifacts"), ("POST", f"{RUNS}/{run_id}/finish"),
        ("POST", f"{RUNS}/{run_id}/heartbeat"), ("POST", f"{RUNS}/{run_id}/params"),
        ("POST", f"{RUNS}/{run_id}/tags"), ("PUT", f"{RUNS}/{run_id}/note"),
        ("POST", f"{RUNS}/{run_id}/sections"), ("POST", RUNS),
        ("POST", "/api/v1/projects/default/outputs/recorded"),
        ("POST", "/api/v1/projects/default/objects/missing"),
        ("POST", "/api/v1/projects/default/tokens"),
        ("PUT", f"/api/v1/projects/default/documents/runs/x.json?session={session}"),
        ("POST", f"/api/v1/projects/default/documents/import?session={session}"),
    ]  # fmt: skip
    with httpx.Client(base_url=server) as client:
        for method, path in routes:
            for _ in range(150):
                body = _random_body(rng)
                if not isinstance(body, dict) or rng.random() < 0.3:
                    body = {"columns": [body], "seqs": _random_body(rng), "summaries": body}
                answer = client.request(method, path, content=json.dumps(body))
                assert answer.status_code < 500, (method, path, body, answer.text)

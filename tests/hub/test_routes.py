"""The hub's read routes over real HTTP: grid windows with verdicts, column keys,
groups, CSV export, previews and downloads, zoomed history, filter checks; and the
hardening every answer carries."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import httpx
import pytest

from tests.hub.conftest import HOSTILE_NAME, Hub, _lockstep, png

P = "/api/v1/projects/default"


def get(hub: Hub, path: str, **params: object) -> httpx.Response:
    return httpx.get(f"{hub.url}{P}{path}", params=params)  # type: ignore[arg-type]


def test_a_grid_window_counts_all_and_carries_verdicts(hub: Hub) -> None:
    # Other tests add runs to the shared store: the count route is the reference.
    everything = get(hub, "/runs/count").json()["count"]
    assert everything >= len(hub.runs)
    first = get(hub, "/hub/runs", limit=3).json()
    assert first["total"] == everything and len(first["runs"]) == 3
    rest = get(hub, "/hub/runs", offset=3, limit=1000, total="false").json()
    assert "total" not in rest
    assert len(rest["runs"]) == everything - 3
    rows = {r["name"]: r for r in first["runs"] + rest["runs"]}
    assert rows["baseline"]["verdict"]["verdict"] == "IDENTICAL"
    assert rows["shifted"]["verdict"] is None
    loss = rows["baseline"]["metrics"]["loss"]
    assert loss[1] <= loss[0] <= loss[2]  # last within [min, max]


def test_a_comparison_is_not_a_reproduction_verdict(hub: Hub) -> None:
    # verify --against judges two runs against each other: the grid's badge is about
    # rerunning a run from its record, so a comparison alone leaves it never verified.
    _lockstep(hub.root, "verify", "shifted", "--against", "baseline", check=False)
    rows = {r["name"]: r for r in get(hub, "/hub/runs", limit=100).json()["runs"]}
    assert rows["shifted"]["verdict"] is None
    history = get(hub, f"/runs/{hub.runs['shifted']}/verifications").json()["verifications"]
    assert history and history[-1]["kind"] == "comparison"


def test_keys_list_what_runs_use(hub: Hub) -> None:
    everything = get(hub, "/hub/keys").json()
    assert {"lr", "seed", "evil"} <= set(everything["params"])
    assert {"loss", "accuracy"} <= set(everything["metrics"])
    sweep = get(hub, "/hub/keys", experiment="sweep").json()
    assert "accuracy" not in sweep["metrics"] and "note" in sweep["tags"]


def test_groups_aggregate_the_last_values(hub: Hub) -> None:
    found = get(hub, "/hub/groups", by="params.lr", metrics="loss", experiment="sweep").json()
    groups = {json.dumps(g["value"]): g for g in found["groups"]}
    assert groups["0.1"]["runs"] == 2
    assert groups["0.1"]["metrics"]["loss"]["min"] == pytest.approx(0.21, abs=1e-9)
    assert groups["0.1"]["metrics"]["loss"]["max"] == pytest.approx(0.22, abs=1e-9)
    everything = get(hub, "/hub/groups", by="lr", metrics="loss").json()["groups"]
    # Runs without the param are one group of their own; the groups hold every run.
    total = get(hub, "/runs/count").json()["count"]
    lacking = [g for g in everything if g["value"] is None]
    assert len(lacking) == 1 and lacking[0]["runs"] >= 3
    assert sum(g["runs"] for g in everything) == total


def test_csv_cells_never_run_as_formulas(hub: Hub) -> None:
    script = (
        "import lockstep\n"
        "with lockstep.start(experiment='csv', params={'cmd': '=HYPERLINK(\"x\")', 'neg': -1}):\n"
        "    pass\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=hub.root, check=True, capture_output=True)
    answer = get(hub, "/hub/runs.csv", experiment="csv", columns="params.cmd,params.neg")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[1][2] == '\'=HYPERLINK("x")' and rows[1][3] == "-1"
    assert get(hub, "/hub/runs.csv", columns="x," * 2001).status_code == 400


def test_previews_are_bounded_and_typed(hub: Hub) -> None:
    record = get(hub, f"/runs/{hub.runs['baseline']}").json()
    by_path = {a["path"]: a["digest"] for a in record["artifacts"]}
    text = get(hub, f"/hub/objects/{by_path['table.csv']}/text", limit=6).json()
    assert text == {"text": "epoch,", "truncated": True, "binary": False}
    binary = get(hub, f"/hub/objects/{by_path['model.npy']}/text").json()
    assert binary["binary"] is True and binary["text"] == ""
    image = get(hub, f"/hub/objects/{by_path['chart.png']}/image", name="chart.png")
    assert image.headers["content-type"] == "image/png" and image.content == png()
    # SVG can carry script: never served as an image from our origin.
    refused = get(hub, f"/hub/objects/{by_path['chart.png']}/image", name="chart.svg")
    assert refused.status_code == 400
    assert get(hub, "/hub/objects/not-a-digest/text").status_code == 404
    assert get(hub, f"/hub/objects/{'0' * 64}/text").status_code == 404


def test_downloads_are_attachments_with_a_clean_name(hub: Hub) -> None:
    record = get(hub, f"/runs/{hub.runs['baseline']}").json()
    digest = {a["path"]: a["digest"] for a in record["artifacts"]}["table.csv"]
    answer = get(hub, f"/hub/objects/{digest}/download", name='../../x"; evil=1.csv')
    # The base name only, and only letters, digits, dot, dash, underscore.
    assert answer.headers["content-disposition"] == 'attachment; filename="xevil1.csv"'
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.text == "epoch,loss\n1,0.5\n2,0.25\n"


def test_history_zooms_to_a_range_of_steps(hub: Hub) -> None:
    run = hub.runs["baseline"]
    whole = get(hub, f"/runs/{run}/history", key="loss", max_points=10).json()
    assert whole["points"] == 300 and len(whole["steps"]) <= 10
    zoomed = get(hub, f"/runs/{run}/history", key="loss", min_step=100, max_step=149).json()
    assert zoomed["in_range"] == 50 and zoomed["steps"] == list(range(100, 150))


def test_filter_check_says_where_it_fails(hub: Hub) -> None:
    assert get(hub, "/hub/check", filter="params.lr > 0.1").json() == {"ok": True}
    bad = get(hub, "/hub/check", filter="params.lr >").json()
    assert bad["ok"] is False and bad["error"]["column"] == 12
    assert get(hub, "/hub/check", sort="-").json()["ok"] is False
    # The grid's route itself answers a bad filter with 400 and the column.
    refused = get(hub, "/hub/runs", filter="params.lr >")
    assert refused.status_code == 400 and refused.json()["context"]["column"] == 12


def test_every_answer_is_hardened(hub: Hub) -> None:
    for path in ("/", "/p/default/runs", f"{P}/hub/runs", "/health", "/assets/missing.js"):
        headers = httpx.get(hub.url + path).headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path


def test_the_hub_page_is_served_for_its_routes_only(hub: Hub) -> None:
    assert httpx.get(f"{hub.url}/p/default/runs/{HOSTILE_NAME}").status_code == 200
    assert httpx.get(f"{hub.url}/nowhere").status_code == 404
    assert httpx.get(f"{hub.url}/p/default/runs").headers["content-type"].startswith("text/html")

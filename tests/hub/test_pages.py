"""Each hub page clicked through in Debian's Chromium, asserted on what a person sees,
with a screenshot of each; no page may log a console error (the page fixture checks)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.hub.conftest import HOSTILE_NAME, HOSTILE_PARAM, HOSTILE_TAG, Hub, screenshot

pytestmark = pytest.mark.slow


def open_page(page: Page, hub: Hub, path: str) -> None:
    page.goto(hub.url + path)
    expect(page.get_by_role("navigation", name="Hub")).to_be_visible()


def grid_rows(page: Page) -> Any:
    # Data rows only: the header row has aria-rowindex 1.
    return page.get_by_role("grid", name="Runs").locator('[role="row"]:not([aria-rowindex="1"])')


def test_runs_grid_lists_runs_with_their_verdicts(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/")
    expect(page).to_have_url(f"{hub.url}/p/default/runs")
    grid = page.get_by_role("grid", name="Runs")
    expect(grid).to_be_visible()
    total = httpx.get(f"{hub.url}/api/v1/projects/default/runs/count").json()["count"]
    assert total >= len(hub.runs)
    expect(page.get_by_text(f"{total} runs")).to_be_visible()
    baseline = grid.get_by_role("row").filter(
        has=page.get_by_role("link", name="baseline", exact=True)
    )
    expect(baseline.get_by_text("IDENTICAL")).to_be_visible()
    shifted = grid.get_by_role("row").filter(
        has=page.get_by_role("link", name="shifted", exact=True)
    )
    expect(shifted.get_by_text("never verified")).to_be_visible()
    assert grid.get_attribute("aria-rowcount") == str(total + 1)
    screenshot(page, "runs")


def test_a_filter_narrows_the_grid_and_lives_in_the_url(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs?exp=sweep")
    box = page.get_by_role("searchbox", name="Filter runs")
    box.fill("params.lr < 0.05")
    box.press("Enter")
    expect(page.get_by_text("4 runs")).to_be_visible()
    assert "filter=params.lr" in page.url
    expect(grid_rows(page)).to_have_count(4)
    # The link shares the view: a fresh page on the URL shows the same rows.
    page.goto(page.url)
    expect(page.get_by_text("4 runs")).to_be_visible()
    expect(page.get_by_role("searchbox", name="Filter runs")).to_have_value("params.lr < 0.05")


def test_a_bad_filter_is_shown_at_its_column(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs")
    box = page.get_by_role("searchbox", name="Filter runs")
    box.fill("params.lr >")
    box.press("Enter")
    alert = page.locator("#filter-error")
    expect(alert).to_contain_text("column 12")
    expect(alert).to_contain_text("expected a value")
    assert box.get_attribute("aria-invalid") == "true"
    screenshot(page, "runs-filter-error")


def test_sorting_by_a_metric_orders_the_rows(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs?exp=sweep&cols=params:lr,metrics:loss")
    page.get_by_role("columnheader", name="loss").get_by_role("button").click()
    expect(page).to_have_url(re.compile(re.escape("sort=-metrics.loss")))
    header = page.get_by_role("columnheader", name="loss")
    expect(header).to_have_attribute("aria-sort", "descending")
    first = grid_rows(page).first
    expect(first).to_contain_text("1")  # the hostile run's loss of 1.0 is the highest
    expect(first.get_by_role("link")).to_have_text(HOSTILE_NAME)
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(grid_rows(page).first.locator('[aria-colindex="4"]')).to_have_text("0.012")


def test_columns_are_chosen_and_remembered(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs?exp=sweep")
    page.get_by_role("button", name="Columns").click()
    dialog = page.get_by_role("dialog", name="Choose columns")
    dialog.get_by_role("searchbox", name="Find a column").fill("loss (max)")
    dialog.get_by_role("checkbox", name="metric loss (max)").check()
    dialog.get_by_role("button", name="Done").click()
    expect(page.get_by_role("columnheader", name="loss (max)")).to_be_visible()
    # Remembered for the experiment: the same view without the URL's columns keeps it.
    page.goto(f"{hub.url}/p/default/runs?exp=sweep")
    expect(page.get_by_role("columnheader", name="loss (max)")).to_be_visible()


def test_group_by_a_param_aggregates_metrics(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs?exp=sweep&cols=metrics:loss")
    page.get_by_label("Group by").select_option("lr")
    table = page.get_by_role("table", name="Runs grouped by lr")
    expect(table).to_be_visible()
    row = table.get_by_role("row").filter(has=page.get_by_role("button", name="0.1", exact=True))
    expect(row).to_contain_text("2")
    expect(row).to_contain_text("0.215 (0.21 \u2013 0.22)")
    screenshot(page, "runs-grouped")
    row.get_by_role("button", name="0.1", exact=True).click()
    expect(page.get_by_text("2 runs")).to_be_visible()
    expect(page.get_by_role("searchbox", name="Filter runs")).to_have_value("params.lr = 0.1")


def test_the_grid_is_driven_by_keyboard(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs?exp=sweep&sort=name")
    grid = page.get_by_role("grid", name="Runs")
    grid.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press(" ")
    page.keyboard.press("ArrowDown")
    page.keyboard.press(" ")
    expect(page.get_by_role("button", name="Compare (2)")).to_be_enabled()
    page.keyboard.press("Enter")
    expect(page.get_by_role("tablist", name="Run sections")).to_be_visible()


def test_csv_export_holds_the_view(hub: Hub) -> None:
    answer = httpx.get(
        f"{hub.url}/api/v1/projects/default/hub/runs.csv",
        params={
            "experiment": "sweep",
            "filter": "params.lr >= 0.1",
            "sort": "name",
            "columns": "params.lr,params.evil,metrics.loss.last,verdict",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["id", "name", "params.lr", "params.evil", "metrics.loss.last", "verdict"]
    assert len(rows) == 4  # header + lr 0.1 (two seeds) + the hostile run's 0.5
    assert {r[2] for r in rows[1:]} == {"0.1", "0.5"}


def test_select_two_runs_and_compare_them(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs")
    for name in ("baseline", "shifted"):
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
        row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Compare (2)").click()
    expect(page.get_by_role("heading", name="Compare 2 runs")).to_be_visible()
    data = page.get_by_role("table", name="data that differ")
    expect(data).to_contain_text("data/points.csv")
    expect(page.get_by_role("heading", name="params same")).to_be_visible()
    expect(page.get_by_role("img", name="Chart of metric accuracy for 2 runs")).to_be_visible()
    # lockstep explain ran on these two: its answer is shown with them.
    factors = page.get_by_role("table", name="Factors swapped one at a time")
    expect(factors.get_by_role("cell", name="data", exact=True)).to_be_visible()
    expect(page.get_by_text("baseline against shifted: NOT REPRODUCED")).to_be_visible()
    screenshot(page, "compare")


def test_compare_many_runs_draws_parallel_coordinates(page: Page, hub: Hub) -> None:
    sweep = [i for n, i in hub.runs.items() if n not in ("baseline", "shifted")][:6]
    open_page(page, hub, f"/p/default/compare?runs={','.join(sweep)}&metric=loss")
    expect(page.get_by_role("img", name="Chart of metric loss")).to_be_visible()
    parallel = page.get_by_role("img", name="Parallel coordinates")
    expect(parallel).to_be_visible()
    assert parallel.locator("polyline").count() == len(sweep)
    screenshot(page, "compare-many")


def test_run_page_sections(page: Page, hub: Hub) -> None:
    run = hub.runs["baseline"]
    open_page(page, hub, f"/p/default/runs/{run}")
    expect(page.get_by_role("heading", name="baseline", level=1)).to_be_visible()
    expect(page.get_by_text(f"lockstep rerun {run}")).to_be_visible()
    expect(page.get_by_role("table", name="Run facts")).to_contain_text("7")  # the seed
    screenshot(page, "run-overview")

    page.get_by_role("tab", name="Code").click()
    diff = page.get_by_label("Uncommitted diff")
    expect(diff).to_contain_text("+# tuned by hand")
    expect(diff.locator(".diff-add").first).to_be_visible()
    page.get_by_role("button", name="notes.txt").click()
    expect(page.get_by_label("notes.txt")).to_have_text("why this run: <i>testing</i>\n")
    screenshot(page, "run-code")

    page.get_by_role("tab", name="Inputs & outputs").click()
    expect(page.get_by_role("table", name="Inputs")).to_contain_text("data/points.csv")
    expect(page.get_by_role("link", name="dataset points@v1")).to_be_visible()
    expect(page.get_by_role("link", name="model classifier@v1")).to_be_visible()

    page.get_by_role("tab", name="Environment").click()
    page.get_by_role("searchbox", name="Find a package").fill("numpy")
    expect(page.get_by_role("table", name="Packages").get_by_role("row")).to_have_count(2)
    screenshot(page, "run-environment")

    page.get_by_role("tab", name="Logs").click()
    expect(page.get_by_label("stdout")).to_contain_text("final accuracy")
    expect(page.get_by_label("stderr")).to_contain_text("a warning on stderr")

    page.get_by_role("tab", name="Verification").click()
    history = page.get_by_role("table", name="Verification history")
    expect(history.get_by_text("IDENTICAL")).to_be_visible()

    page.get_by_role("tab", name="Report").click()
    expect(page.get_by_label("Reproducibility report")).to_contain_text(run)


def test_run_metrics_charts_zoom_and_settings(page: Page, hub: Hub) -> None:
    run = hub.runs["baseline"]
    open_page(page, hub, f"/p/default/runs/{run}?tab=metrics")
    chart = page.get_by_role("img", name="Chart of metric loss")
    expect(chart).to_be_visible()
    expect(page.get_by_role("img", name="Chart of metric accuracy")).to_be_visible()
    assert chart.get_attribute("data-points") == "300"
    screenshot(page, "run-metrics")
    box = chart.bounding_box()
    assert box is not None
    with page.expect_response(lambda r: "min_step=" in r.url) as zoom:
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
    assert zoom.value.ok
    expect(page.get_by_role("button", name="Reset zoom")).to_be_visible()
    page.get_by_label("log scale").check()
    expect(page).to_have_url(re.compile(re.escape("log=1")))
    page.get_by_label("x axis").select_option("time")
    expect(page).to_have_url(re.compile(re.escape("x=time")))
    expect(page.get_by_role("img", name="Chart of metric loss")).to_be_visible()


def test_artifacts_preview_and_download(page: Page, hub: Hub) -> None:
    run = hub.runs["baseline"]
    open_page(page, hub, f"/p/default/runs/{run}?tab=artifacts")
    page.get_by_role("button", name="chart.png").click()
    image = page.get_by_role("img", name="preview of chart.png")
    expect(image).to_be_visible()
    assert page.evaluate("(el) => el.naturalWidth", image.element_handle()) == 8
    page.get_by_role("button", name="table.csv").click()
    expect(page.get_by_role("table", name="first rows of table.csv")).to_contain_text("0.25")
    page.get_by_role("button", name="summary.json").click()
    expect(page.get_by_text('"note": "<script>alert(4)</script>"')).to_be_visible()
    screenshot(page, "run-artifacts")
    with page.expect_download() as download:
        page.get_by_role("link", name="download table.csv").click()
    assert download.value.suggested_filename == "table.csv"
    assert Path(download.value.path()).read_text() == "epoch,loss\n1,0.5\n2,0.25\n"


def test_datasets_versions_files_and_diff(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/datasets")
    table = page.get_by_role("table", name="Datasets")
    expect(table).to_contain_text("v2")
    screenshot(page, "datasets")
    table.get_by_role("link", name="points").click()
    expect(page.get_by_role("heading", name="Dataset points")).to_be_visible()
    expect(page.get_by_role("list", name="Files of v2")).to_contain_text("points.csv")
    page.get_by_role("button", name="diff with v2").click()
    expect(
        page.get_by_role("heading", name="v1 → v2: 0 added, 0 removed, 1 changed")
    ).to_be_visible()
    page.get_by_role("button", name="v1", exact=True).click()
    expect(page.get_by_role("heading", name="Runs that used v1")).to_be_visible()
    expect(page.get_by_role("link", name=hub.runs["baseline"][:10])).to_be_visible()
    screenshot(page, "dataset")


def test_models_aliases_and_the_producing_runs_proof(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/models")
    expect(page.get_by_role("table", name="Models")).to_contain_text("champion → v1")
    screenshot(page, "models")
    page.get_by_role("link", name="classifier").click()
    version = page.get_by_role("table", name="Version 1")
    expect(version.get_by_text("IDENTICAL")).to_be_visible()
    expect(page.get_by_role("table", name="Alias history")).to_contain_text("champion")
    page.get_by_text("Summary").click()
    expect(page.get_by_role("table", name="Summary of version 1")).to_be_visible()
    screenshot(page, "model")


def test_lineage_graph_links_to_each_node(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/lineage?ref=model:classifier@v1")
    graph = page.get_by_role("img", name="Lineage graph of model:classifier@v1")
    expect(graph).to_be_visible()
    expect(page.get_by_text("3 nodes, 2 links upstream")).to_be_visible()
    expect(graph.get_by_role("link", name="dataset points@v1")).to_be_visible()
    screenshot(page, "lineage")
    page.get_by_role("link", name="run baseline").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="baseline", level=1)).to_be_visible()


def test_run_data_is_rendered_as_text_never_as_markup(page: Page, hub: Hub) -> None:
    run = hub.runs[HOSTILE_NAME]
    open_page(page, hub, "/p/default/runs?exp=sweep&cols=params:evil,tags:note")
    expect(page.get_by_role("link", name=HOSTILE_NAME)).to_be_visible()
    expect(page.get_by_text(HOSTILE_PARAM)).to_be_visible()
    expect(page.get_by_text(HOSTILE_TAG)).to_be_visible()
    open_page(page, hub, f"/p/default/runs/{run}")
    expect(page.get_by_role("heading", name=HOSTILE_NAME)).to_be_visible()
    expect(page.get_by_role("table", name="Params")).to_contain_text(HOSTILE_PARAM)
    assert page.evaluate("() => window.__owned") is None
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("main script").count() == 0
    screenshot(page, "hostile-run")


def test_every_control_has_an_accessible_name_and_keyboard_reach(page: Page, hub: Hub) -> None:
    pages = [
        "/p/default/runs",
        f"/p/default/runs/{hub.runs['baseline']}?tab=metrics",
        f"/p/default/compare?runs={hub.runs['baseline']},{hub.runs['shifted']}",
        "/p/default/datasets/points",
        "/p/default/models/classifier",
        "/p/default/lineage?ref=baseline",
    ]
    unnamed = """() => [...document.querySelectorAll(
        'a[href], button, input, select, [tabindex], [role=grid], [role=img]')]
      .filter(el => {
        const name = (el.getAttribute('aria-label') || el.textContent || el.title
          || (el.labels && [...el.labels].map(l => l.textContent).join('')) || '').trim();
        return !name && el.getAttribute('aria-hidden') !== 'true';
      }).map(el => el.outerHTML.slice(0, 120))"""
    for path in pages:
        open_page(page, hub, path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate(unnamed) == [], path
        # Tab reaches the controls: the first press lands on the skip link, then on.
        reached = set()
        for _ in range(12):
            page.keyboard.press("Tab")
            reached.add(
                page.evaluate("() => document.activeElement && document.activeElement.tagName")
            )
        assert reached & {"A", "BUTTON", "INPUT", "SELECT"}, path


def test_dark_theme_switches_and_is_kept(page: Page, hub: Hub) -> None:
    open_page(page, hub, "/p/default/runs")
    light = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    page.get_by_role("button", name="Dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert dark != light
    screenshot(page, "runs-dark")
    open_page(page, hub, f"/p/default/runs/{hub.runs['baseline']}?tab=metrics")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("img", name="Chart of metric loss")).to_be_visible()
    screenshot(page, "run-metrics-dark")


def test_running_runs_update_live(page: Page, hub: Hub) -> None:
    import os
    import subprocess
    import sys
    import time

    release = hub.root / "release-live-run"
    script = (
        "import os, time, lockstep\n"
        "with lockstep.start(name='live-one', experiment='live') as run:\n"
        "    run.log({'loss': 1.0}, step=0)\n"
        f"    while not os.path.exists({str(release)!r}):\n"
        "        time.sleep(0.05)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=hub.root, env=env)
    try:
        deadline = time.monotonic() + 30
        while not httpx.get(
            f"{hub.url}/api/v1/projects/default/runs/count", params={"experiment": "live"}
        ).json()["count"]:
            assert time.monotonic() < deadline, "the run never appeared"
            time.sleep(0.1)
        open_page(page, hub, "/p/default/runs?exp=live&cols=status")
        row = grid_rows(page).first
        expect(row).to_contain_text("running")
        release.touch()
        assert process.wait(timeout=30) == 0
        # No reload: the grid asks again while a run in view is running.
        expect(row).to_contain_text("finished", timeout=15_000)
    finally:
        release.touch()
        process.wait(timeout=30)

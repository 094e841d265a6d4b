"""The hub in headless Chromium, beside MLflow's UI, measured in the same run.

    python benchmarks/hub.py [--runs 100000] [--points 1000000] [--mlflow-runs 1000]
                             [--mlflow-points 10000] [--no-peers]

lockstep: a store of --runs runs (10 params, 10 metrics each, inserted in bulk: setup,
not measured), one run with 10 series of --points points (logged through
`lockstep.start`), `lockstep server --quiet` over it, Debian's Chromium through
Playwright. Measured from the navigation to what a person sees: the first grid row; a
scroll to the end in 200 steps (the longest frame, from requestAnimationFrame); a
filter typed and applied until the grid shows the matching rows, and until their
count (queried in parallel) is shown; the run's 10 charts all
drawn; a zoom's detail fetched and drawn; a compare of 50 runs drawn.

MLflow (`.venv-peers`): `mlflow server` over SQLite, loaded through MLflow's client
(`log_batch`), then the same cases in its UI: the first run row of the experiment's
runs table, a filter typed into its search box until its count of matching runs
changes, the run's metric charts (MLflow draws the charts in view only: its first
three drawn), the compare page of 50 runs (its parallel-coordinates plot drawn).
MLflow is loaded with fewer runs and points (--mlflow-runs, --mlflow-points) because
its client stores them at a few hundred requests per second: say so beside its
figures. A case MLflow's UI does not show in 60 s is reported as such.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server import (  # noqa: E402
    BASE_ENV,
    MLFLOW,
    free_port,
    lockstep_server,
    mlflow_server,
    process,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LIMIT_S = 60.0

FILL = """
import os, sys
os.environ["LOCKSTEP_HOME"] = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from benchmarks.tracking_lockstep import _populate
import lockstep
_populate(int(sys.argv[3]))
keys = [f"k{i}" for i in range(10)]
with lockstep.start(name="long", experiment="long") as run:
    for step in range(int(sys.argv[4])):
        run.log({k: ((step * (i + 3)) % 977) * 1e-3 for i, k in enumerate(keys)}, step=step)
print(run.id)
"""

MLFLOW_FILL = """
import json, sys, time
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
runs, points = int(sys.argv[2]), int(sys.argv[3])
experiment = client.create_experiment("bench")
ids = []
for i in range(runs):
    run = client.create_run(experiment, run_name=f"run-{i}")
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        params=[Param(f"p{p}", str((i * (p + 1)) % 97)) for p in range(10)],
        metrics=[Metric(f"m{m}", ((i * (m + 3)) % 101) / 100, now, 0) for m in range(10)],
    )
    client.set_terminated(run.info.run_id)
    ids.append(run.info.run_id)
long = client.create_run(experiment, run_name="long")
now = int(time.time() * 1000)
for start in range(0, points, 100):
    batch = [
        Metric(f"k{k}", ((s * (k + 3)) % 977) * 1e-3, now, s)
        for s in range(start, min(points, start + 100))
        for k in range(10)
    ]
    client.log_batch(long.info.run_id, metrics=batch)
client.set_terminated(long.info.run_id)
print(json.dumps({"experiment": experiment, "runs": ids, "long": long.info.run_id}))
"""


def launch() -> Any:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("benchmarks/hub.py needs Debian's Chromium on PATH (apt-get install chromium)")
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(
        executable_path=chromium, headless=True, args=CHROMIUM_ARGS
    )
    return playwright, browser


def timed(action: Any) -> float:
    """Seconds action takes, or None past LIMIT_S."""
    start = time.perf_counter()
    try:
        action()
    except Exception as exc:  # a timeout of the page: reported, not raised
        print(f"  (not shown within {LIMIT_S:.0f} s: {type(exc).__name__})", file=sys.stderr)
        return float("nan")
    return time.perf_counter() - start


SCROLL = """async (steps) => {
  const grid = document.querySelector('[role=grid]');
  const total = grid.scrollHeight - grid.clientHeight;
  const frames = [];
  let last = performance.now();
  for (let i = 1; i <= steps; i++) {
    grid.scrollTop = (total * i) / steps;
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
  }
  return frames;
}"""


def lockstep_cases(browser: Any, url: str, long_id: str, compare: list[str], runs: int) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    found: dict[str, float] = {}
    limit = LIMIT_S * 1000
    runs_page = f"{url}/p/default/runs?exp=bench"
    page.goto(f"{url}/health")  # the browser started; what follows is the hub only

    def first_row() -> None:
        page.goto(runs_page)
        page.locator('[role=row][aria-rowindex="2"] a').first.wait_for(timeout=limit)

    found["first_row_s"] = timed(first_row)
    frames = page.evaluate(SCROLL, 200)
    found["scroll_max_frame_ms"] = max(frames)
    print(
        "  frames over 50 ms at steps:",
        [(i, round(f)) for i, f in enumerate(frames) if f > 50],
        file=sys.stderr,
    )
    found["scroll_frames_over_50ms"] = sum(1 for f in frames if f > 50)
    last = f'[role=row][aria-rowindex="{runs + 1}"] a'
    found["scroll_end_rows_s"] = timed(lambda: page.locator(last).first.wait_for(timeout=limit))
    page.goto(runs_page)
    page.locator('[role=row][aria-rowindex="2"] a').first.wait_for(timeout=limit)
    before = page.locator(".count").inner_text()
    box = page.get_by_role("searchbox", name="Filter runs")
    box.fill("params.p0 >= 0.1 and metrics.m1 >= 0.5")
    started = time.perf_counter()
    box.press("Enter")
    # The matching rows first (the count of all of them follows in parallel) ...
    page.wait_for_function(
        "(before) => { const c = document.querySelector('.count');"
        " return c && c.textContent !== before"
        " && document.querySelector('[role=row][aria-rowindex=\"2\"] a'); }",
        arg=before,
        timeout=limit,
    )
    found["filter_s"] = time.perf_counter() - started
    # ... then the count.
    page.wait_for_function(
        "(before) => { const c = document.querySelector('.count');"
        " return c && /^[0-9,]+ runs?$/.test(c.textContent) && c.textContent !== before; }",
        arg=before,
        timeout=limit,
    )
    found["filter_counted_s"] = time.perf_counter() - started

    def charts() -> None:
        page.goto(f"{url}/p/default/runs/{long_id}?tab=metrics")
        page.wait_for_function(
            "() => document.querySelectorAll('.chart-box canvas').length >= 10",
            timeout=limit,
        )

    found["charts_10x_s"] = timed(charts)
    chart = page.get_by_role("img", name="Chart of metric k0")
    area = chart.bounding_box()
    assert area is not None

    def zoom() -> None:
        with page.expect_response(lambda r: "min_step=" in r.url, timeout=limit):
            page.mouse.move(area["x"] + area["width"] * 0.40, area["y"] + area["height"] / 2)
            page.mouse.down()
            page.mouse.move(area["x"] + area["width"] * 0.45, area["y"] + area["height"] / 2)
            page.mouse.up()
        page.get_by_role("button", name="Reset zoom").first.wait_for(timeout=limit)

    found["zoom_detail_s"] = timed(zoom)

    def compared() -> None:
        page.goto(f"{url}/p/default/compare?runs={','.join(compare)}")
        page.get_by_role("img", name="Parallel coordinates").wait_for(timeout=limit)
        page.wait_for_function("() => document.querySelector('.chart-box canvas')", timeout=limit)

    found["compare_50_s"] = timed(compared)
    page.close()
    return found


def mlflow_cases(browser: Any, work: Path, runs: int, points: int) -> dict[str, float]:
    if not (MLFLOW / "mlflow").exists():
        print("MLflow: not installed in .venv-peers, skipped", file=sys.stderr)
        return {}
    directory = work / "mlflow"
    directory.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = mlflow_server(port, directory)
    found: dict[str, float] = {}
    with process(command, directory, BASE_ENV, f"{url}/health"):
        started = time.perf_counter()
        made = subprocess.run(
            [str(MLFLOW / "python"), "-c", MLFLOW_FILL, url, str(runs), str(points)],
            env=BASE_ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"  MLflow loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        loaded = json.loads(made.stdout.strip().splitlines()[-1])
        experiment, long_id = loaded["experiment"], loaded["long"]
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/health")
        limit = LIMIT_S * 1000
        newest = f"run-{runs - 1}"

        def first_row() -> None:
            page.goto(f"{url}/#/experiments/{experiment}/runs")
            page.get_by_text(newest, exact=True).first.wait_for(timeout=limit)

        found["first_row_s"] = timed(first_row)
        # The newest run shown first; the filter applied when another one is (the
        # "long" run has no m1, so it leaves; MLflow's count says at most a page, 100).
        first_shown = (
            "() => ([...document.querySelectorAll('a')].map(e => e.textContent.trim())"
            ".find(t => /^(run-[0-9]+|long)$/.test(t)) || '')"
        )
        before = page.evaluate(first_shown)
        search = page.get_by_placeholder(re.compile("metrics.rmse"))

        def apply_filter() -> None:
            search.fill("metrics.m1 >= 0.5 and params.p1 != '0'")
            search.press("Enter")
            page.wait_for_function(
                f"(before) => {{ const now = ({first_shown})(); return now && now !== before; }}",
                arg=before,
                timeout=limit,
            )

        found["filter_s"] = timed(apply_filter)
        found["filter_counted_s"] = found["filter_s"]  # MLflow shows rows and count at once

        def charts() -> None:
            # MLflow draws the charts in view only (three): those are waited for.
            page.goto(f"{url}/#/experiments/{experiment}/runs/{long_id}/model-metrics")
            page.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                timeout=limit,
            )

        found["charts_10x_s"] = timed(charts)
        ids = loaded["runs"][:50]

        def compared() -> None:
            page.goto(
                f"{url}/#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([experiment])}"
            )
            page.locator(".js-plotly-plot .parcoords").first.wait_for(timeout=limit)

        found["compare_50_s"] = timed(compared)
        page.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--mlflow-runs", type=int, default=1000)
    parser.add_argument("--mlflow-points", type=int, default=10_000)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lockstep-hub-bench-"))
    try:
        store = work / "lockstep" / "store"
        store.parent.mkdir(parents=True)
        started = time.perf_counter()
        made = subprocess.run(
            [sys.executable, "-c", FILL, str(store), str(ROOT), str(args.runs), str(args.points)],
            env=BASE_ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        long_id = made.stdout.strip().splitlines()[-1]
        print(f"  lockstep store built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        playwright, browser = launch()
        try:
            with lockstep_server(store) as (url, _pid):
                import httpx

                newest = httpx.get(
                    f"{url}/api/v1/projects/default/hub/runs",
                    params={"experiment": "bench", "limit": 50, "total": "false"},
                ).json()["runs"]
                mine = lockstep_cases(browser, url, long_id, [r["id"] for r in newest], args.runs)
            peer = (
                {}
                if args.no_peers
                else mlflow_cases(browser, work, args.mlflow_runs, args.mlflow_points)
            )
        finally:
            browser.close()
            playwright.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def seconds(value: float | None) -> str:
        if value is None:
            return "-"
        return "not shown in 60 s" if math.isnan(value) else f"{value * 1000:,.0f} ms"

    rows = [
        (
            f"runs page, first row ({args.runs:,} runs; MLflow {args.mlflow_runs:,})",
            "first_row_s",
            "<= 1 s",
        ),
        ("filter applied: matching rows shown", "filter_s", "<= 300 ms"),
        ("filter applied: matching runs counted", "filter_counted_s", "-"),
        (
            f"10 charts of {args.points:,} points (MLflow: 3 in view, {args.mlflow_points:,})",
            "charts_10x_s",
            "<= 1.5 s",
        ),
        ("zoom: detail fetched and drawn", "zoom_detail_s", "<= 300 ms"),
        ("compare 50 runs drawn", "compare_50_s", "<= 1 s"),
    ]
    print("\n| case | lockstep | MLflow UI | ratio | target |\n|---|---|---|---|---|")
    for label, key, target in rows:
        ours, theirs = mine.get(key), peer.get(key)
        ratio = (
            f"{theirs / ours:.1f}x"
            if ours and theirs and not math.isnan(theirs) and not math.isnan(ours)
            else "-"
        )
        print(f"| {label} | {seconds(ours)} | {seconds(theirs)} | {ratio} | {target} |")
    print(
        f"| scroll to the end: longest frame | {mine['scroll_max_frame_ms']:.0f} ms "
        f"({mine['scroll_frames_over_50ms']:.0f} of 200 over 50 ms) | - | - | <= 50 ms |"
    )
    shown = seconds(mine["scroll_end_rows_s"])
    print(f"| scroll: last rows shown after the scroll | {shown} | - | - | - |")


if __name__ == "__main__":
    main()

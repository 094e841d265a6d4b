"""The built hub in the package matches its sources in web/, and holds what the page
needs: no Node.js at install or run time."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from lockstep.server.hub import assets_dir

ROOT = Path(__file__).resolve().parents[2]


def test_the_built_assets_come_from_the_current_sources() -> None:
    spec = importlib.util.spec_from_file_location("web_sources", ROOT / "web" / "sources.py")
    assert spec and spec.loader
    sources = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sources)
    stamp = (assets_dir() / "SOURCES").read_text().strip()
    assert stamp == sources.digest(), "the hub's built files are stale: run make hub"


def test_the_page_loads_only_files_that_ship() -> None:
    index = (assets_dir() / "index.html").read_text()
    wanted = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index)
    assert wanted, index
    for path in wanted:
        assert (assets_dir() / path.lstrip("/")).is_file(), path
    assert not re.search(r"<script>(?!\s*</script>)", index)  # no inline script
    assert "http://" not in index and "https://" not in index  # nothing from a CDN


def test_the_lockfile_pins_every_front_end_dependency() -> None:
    import json

    package = json.loads((ROOT / "web" / "package.json").read_text())
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    for name, version in {**package["dependencies"], **package["devDependencies"]}.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_lockstep_ui_serves_the_hub_on_the_local_store(
    hub_store: tuple[Path, dict[str, str]],
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from tests.serverproc import free_port

    root, runs = hub_store
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "lockstep", "ui", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "ui did not start"
            time.sleep(0.1)
        page = httpx.get(f"{url}/p/default/runs")
        assert page.status_code == 200 and "lockstep hub" in page.text
        grid = httpx.get(f"{url}/api/v1/projects/default/hub/runs", params={"limit": 1000})
        assert {r["name"] for r in grid.json()["runs"]} >= set(runs)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert f"lockstep hub on {url}/" in stderr

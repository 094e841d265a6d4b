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

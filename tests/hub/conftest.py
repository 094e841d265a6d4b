"""A store built by real runs (tracked, captured, verified, with datasets and models),
a real server over it, and Debian's Chromium driven by Playwright, for the hub tests."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gitrepo import make_repo
from tests.serverproc import served

HOSTILE_NAME = "<script>window.__owned=1</script>"
HOSTILE_PARAM = '"><img src=x onerror="window.__owned=2">'
HOSTILE_TAG = "<b onmouseover=alert(3)>bold</b>"
SCREENSHOTS = Path(
    os.environ.get(
        "LOCKSTEP_SCREENSHOTS", Path(__file__).resolve().parents[2] / "test-output" / "hub"
    )
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

TRAIN = """
import base64
import json
import sys

import numpy as np

import lockstep

data = np.loadtxt("data/points.csv", delimiter=",")
features, labels = data[:, :-1], data[:, -1]
weights = np.random.normal(scale=0.01, size=features.shape[1])
with lockstep.start() as run:
    for step in range(300):
        batch = np.random.permutation(len(labels))[:32]
        probs = 1.0 / (1.0 + np.exp(-features[batch] @ weights))
        weights -= 0.1 * features[batch].T @ (probs - labels[batch]) / len(batch)
        all_probs = 1.0 / (1.0 + np.exp(-features @ weights))
        run.log(
            {
                "accuracy": float(np.mean((all_probs > 0.5) == labels)),
                "loss": float(np.mean((all_probs - labels) ** 2)),
            },
            step=step,
        )
    # Written by the run, then logged: outputs and artifacts.
    with open("chart.png", "wb") as out:
        out.write(base64.b64decode(sys.argv[1]))
    with open("summary.json", "w") as out:
        json.dump({"accuracy": 0.9, "note": "<script>alert(4)</script>"}, out)
    with open("table.csv", "w") as out:
        out.write("epoch,loss\\n1,0.5\\n2,0.25\\n")
    run.log_artifact("chart.png")
    run.log_artifact("summary.json")
    run.log_artifact("table.csv")
np.save("model.npy", weights)
print("final accuracy", float(np.mean((1 / (1 + np.exp(-features @ weights)) > 0.5) == labels)))
print("a warning on stderr", file=sys.stderr)
"""

SWEEP = """
import sys

import lockstep

for lr in (0.1, 0.01, 0.001):
    for seed in (1, 2):
        with lockstep.start(experiment="sweep", params={"lr": lr, "seed": seed}) as run:
            for step in range(50):
                run.log({"loss": lr * 100 / (step + 1) + seed * 0.01}, step=step)
with lockstep.start(
    experiment="sweep",
    name=sys.argv[1],
    params={"lr": 0.5, "evil": sys.argv[2]},
    tags={"note": sys.argv[3]},
) as run:
    run.log({"loss": 1.0}, step=0)
"""


def png(width: int = 8, height: int = 8) -> bytes:
    """A real PNG: a red square."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass
class Hub:
    url: str
    root: Path
    runs: dict[str, str]  # name -> id


def _lockstep(root: Path, *args: str, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")}
    done = subprocess.run(
        [sys.executable, "-m", "lockstep", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"lockstep {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def _write_points(root: Path, shift: float) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    labels = (features @ np.array([1.0, -2.0, 0.5]) + shift > 0).astype(float)
    (root / "data").mkdir(exist_ok=True)
    np.savetxt(root / "data" / "points.csv", np.column_stack([features, labels]), delimiter=",")


def build_store(root: Path) -> dict[str, str]:
    """The project the hub tests look at; returns run ids by name."""
    make_repo(
        root,
        {
            "train.py": TRAIN,
            "sweep.py": SWEEP,
            ".gitignore": "data/\n*.npy\n.lockstep/\nchart.png\nsummary.json\ntable.csv\n",
        },
    )
    # An uncommitted change and an untracked file: the code tab shows both.
    (root / "train.py").write_text(TRAIN + "\n# tuned by hand\n")
    (root / "notes.txt").write_text("why this run: <i>testing</i>\n")
    _write_points(root, 0.0)
    image = base64.b64encode(png()).decode()
    _lockstep(root, "init")
    _lockstep(root, "data", "add", "data", "--name", "points", "-m", "first")
    _lockstep(
        root, "run", "--name", "baseline", "--seed", "7", "--", sys.executable, "train.py", image
    )
    _lockstep(root, "verify", "baseline")
    _write_points(root, 0.3)
    _lockstep(root, "data", "add", "data", "--name", "points", "-m", "shifted")
    _lockstep(
        root, "run", "--name", "shifted", "--seed", "7", "--", sys.executable, "train.py", image
    )
    _lockstep(root, "explain", "baseline", "shifted", "--yes")
    _lockstep(
        root,
        "models",
        "register",
        "classifier",
        "--run",
        "baseline",
        "--path",
        "model.npy",
        "--alias",
        "champion",
    )
    subprocess.run(
        [sys.executable, "sweep.py", HOSTILE_NAME, HOSTILE_PARAM, HOSTILE_TAG],
        cwd=root,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_")},
        check=True,
        capture_output=True,
    )
    import json

    listed = json.loads(_lockstep(root, "runs", "--json", "--limit", "100"))
    return {r["name"]: r["id"] for r in listed}


@pytest.fixture(scope="session")
def hub_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hub") / "project"
    return root, build_store(root)


@pytest.fixture(scope="session")
def hub(hub_store: tuple[Path, dict[str, str]]) -> Iterator[Hub]:
    root, runs = hub_store
    with served(root, "--quiet") as url:
        yield Hub(url=url, root=root, runs=runs)


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's Chromium on PATH (apt-get install -y chromium)")
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


class Console:
    """What the page logged as errors (and uncaught exceptions)."""

    def __init__(self) -> None:
        self.errors: list[str] = []


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page; at the end no console error may have been logged on it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    opened = context.new_page()
    console = Console()
    opened.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    opened.on("dialog", lambda d: console.errors.append(f"a dialog opened: {d.message}"))
    opened.console_errors = console.errors  # type: ignore[attr-defined]
    yield opened
    context.close()
    if not getattr(request.node, "expects_console_errors", False):
        assert console.errors == [], f"the page logged errors: {console.errors}"


def screenshot(page: object, name: str) -> Path:
    """Save what the page shows, for review beside the test output."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path

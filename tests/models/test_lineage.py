"""Lineage over a real chain: raw data, prep run, features, training, model, evaluation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.tracking.test_launcher import lockstep

PREP = """\
import os
os.makedirs("features", exist_ok=True)
for name in sorted(os.listdir("raw")):
    text = open(os.path.join("raw", name)).read()
    open(os.path.join("features", name), "w").write(text.upper())
"""
TRAIN = """\
import os
total = sum(len(open(os.path.join("features", n)).read()) for n in sorted(os.listdir("features")))
open("model.bin", "w").write(f"weights {total}")
"""
EVALUATE = """\
import lockstep
with lockstep.start() as run:
    path = lockstep.models.get("clf@production")
    print("score", len(path.read_text()))
"""


def ok(project: Path, *args: str) -> str:
    result = lockstep(project, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def graph(project: Path, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(project, "lineage", *args, "--json"))


def ids(found: dict, kind: str) -> set[str]:  # type: ignore[type-arg]
    return {n["id"] for n in found["nodes"] if n["kind"] == kind}


def run_id(project: Path, name: str) -> str:
    return str(json.loads(ok(project, "show", name, "--json"))["id"])


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "raw").mkdir(parents=True)
    for i in range(3):
        (project / "raw" / f"{i}.txt").write_text(f"sample {i}\n")
    for name, code in (("prep.py", PREP), ("train.py", TRAIN), ("evaluate.py", EVALUATE)):
        (project / name).write_text(code)
    ok(project, "init")
    ok(project, "data", "add", "raw")
    ok(project, "run", "--name", "prep", "--", sys.executable, "prep.py")
    ok(project, "data", "add", "features")  # after the run: linked by content
    ok(project, "run", "--name", "train", "--seed", "5", "--", sys.executable, "train.py")
    ok(project, "models", "register", "clf", "--run", "train", "--path", "model.bin")
    ok(project, "models", "alias", "clf@v1", "production")
    ok(project, "run", "--name", "evaluate", "--", sys.executable, "evaluate.py")
    return project


def test_upstream_of_the_evaluation_names_every_link(chain: Path) -> None:
    found = graph(chain, "evaluate")
    prep, train, evaluate = (run_id(chain, n) for n in ("prep", "train", "evaluate"))
    assert found["schema_version"] == 1
    assert found["root"] == f"run:{evaluate}"
    assert found["direction"] == "upstream"
    edges = {(e["from"], e["relation"], e["to"]) for e in found["edges"]}
    assert edges == {
        ("model:clf@v1", "read", f"run:{evaluate}"),
        (f"run:{train}", "registered", "model:clf@v1"),
        ("dataset:features@v1", "read", f"run:{train}"),
        (f"run:{prep}", "wrote", "dataset:features@v1"),
        ("dataset:raw@v1", "read", f"run:{prep}"),
    }
    nodes = {n["id"]: n for n in found["nodes"]}
    assert nodes["dataset:raw@v1"]["raw"] is True  # the end of the chain: raw data
    assert nodes[f"run:{train}"]["seed"] == 5
    assert nodes[f"run:{train}"]["status"] == "finished"
    assert len(nodes[f"run:{train}"]["environment"]) == 16
    assert nodes["model:clf@v1"]["aliases"] == ["production"]
    assert found["missing"] == [] and found["cycles"] == [] and found["truncated"] is False

    text = ok(chain, "lineage", "evaluate")
    for expected in (
        "read model clf@v1 [production]",
        "registered by run train",
        "read dataset features@v1",
        "written by run prep",
        "raw data: no recorded run wrote it",
        "seed 5",
    ):
        assert expected in text, text


def test_downstream_of_the_raw_data_reaches_the_model_and_its_alias(chain: Path) -> None:
    found = graph(chain, "raw@v1", "--downstream")
    evaluate = run_id(chain, "evaluate")
    assert found["root"] == "dataset:raw@v1"
    assert "model:clf@v1" in ids(found, "model")
    assert ids(found, "alias") == {"alias:clf@production"}
    edges = {(e["from"], e["relation"], e["to"]) for e in found["edges"]}
    assert ("model:clf@v1", "points", "alias:clf@production") in edges
    assert ("model:clf@v1", "read", f"run:{evaluate}") in edges
    text = ok(chain, "lineage", "raw@v1", "--downstream")
    assert "alias clf@production" in text and "registered model clf@v1" in text


def test_depth_limits_and_says_so(chain: Path) -> None:
    found = graph(chain, "clf@production", "--depth", "1")
    assert {n["kind"] for n in found["nodes"]} == {"model", "run"}
    assert found["truncated"] is True
    assert "stopped at depth 1" in ok(chain, "lineage", "clf@v1", "--depth", "1")
    assert lockstep(chain, "lineage", "clf@v1", "--depth", "0").returncode == 2


def test_a_removed_run_is_a_missing_link_not_a_gap(chain: Path) -> None:
    train = run_id(chain, "train")
    removed = lockstep(chain, "rm", "train")
    assert removed.returncode == 0
    assert "clf@v1 came from this run" in removed.stderr
    found = graph(chain, "clf@v1")
    assert {"node": f"run:{train}", "reason": "the run is not in this store"} in found["missing"]
    assert "MISSING: not in this store" in ok(chain, "lineage", "clf@v1")


def test_a_file_is_traced_by_its_content(chain: Path) -> None:
    found = graph(chain, "model.bin")
    train = run_id(chain, "train")
    assert found["root"].startswith("file:model.bin#")
    assert (f"run:{train}", "wrote", found["root"]) in {
        (e["from"], e["relation"], e["to"]) for e in found["edges"]
    }
    down = graph(chain, "features/0.txt", "--downstream")
    assert f"run:{train}" in ids(down, "run")


def test_dot_and_mermaid_draw_the_same_graph(chain: Path) -> None:
    dot = ok(chain, "lineage", "evaluate", "--format", "dot")
    assert dot.startswith("digraph lineage {") and dot.count(" -> ") == 5
    mermaid = ok(chain, "lineage", "evaluate", "--format", "mermaid")
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->|") == 5


def test_a_cycle_is_reported(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("seed content")
    (project / "forth.py").write_text("open('b.txt', 'w').write(open('a.txt').read() + '!')\n")
    (project / "back.py").write_text("open('a.txt', 'w').write(open('b.txt').read()[:-1])\n")
    ok(project, "init")
    ok(project, "run", "--name", "forth", "--", sys.executable, "forth.py")
    ok(project, "run", "--name", "back", "--", sys.executable, "back.py")
    found = graph(project, "forth")
    forth, back = run_id(project, "forth"), run_id(project, "back")
    assert any({f"run:{forth}", f"run:{back}"} <= set(group) for group in found["cycles"])
    assert "cycle:" in ok(project, "lineage", "forth")


def _documented_shape() -> dict:  # type: ignore[type-arg]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Lineage", 1)[1]
    block = section.split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_the_json_shape_is_the_one_the_readme_documents(chain: Path) -> None:
    documented = _documented_shape()
    kinds = {n["kind"]: set(n) for n in documented["nodes"]}
    up = graph(chain, "evaluate")
    down = graph(chain, "raw@v1", "--downstream")
    ok(chain, "rm", "train")  # the model version keeps its run's id: a missing link
    missing = graph(chain, "evaluate")
    for found in (up, down, missing):
        assert set(found) == set(documented)
        for node in found["nodes"]:
            if node["kind"] == "alias":
                assert set(node) == {"id", "kind", "ref"}
                continue
            optional = {"raw"} if node["kind"] in {"dataset", "file"} else set()
            if node["kind"] == "run" and node.get("missing"):
                assert set(node) == {"id", "kind", "run", "missing"}
                continue
            assert set(node) - optional <= kinds[node["kind"]], node
            assert kinds[node["kind"]] - {"raw"} <= set(node) | optional, node
        for edge in found["edges"]:
            assert set(edge) == {"from", "to", "relation"}
            assert edge["relation"] in {"read", "wrote", "registered", "points"}
        for item in found["missing"]:
            assert set(item) == set(documented["missing"][0])
    assert missing["missing"]

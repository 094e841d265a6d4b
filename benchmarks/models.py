"""Models beside MLflow's registry, and lineage over a large store, measured in one run.

    python benchmarks/models.py [--no-peers] [--gib 1] [--runs 10000]

Registering: a fresh process starts a run, registers a checkpoint of --gib GiB
(lockstep: `lockstep.models.register`, which logs it as an output first; MLflow:
`log_artifact`, then a registered model and a version at the artifact's URI),
and ends the run; timed whole and for the registering calls alone. Beside it,
one BLAKE3 pass over the same file: the floor for recording it by content. The
file is read once before timing so every case starts from the page cache.

Lineage: a store of --runs runs and a tenth as many dataset versions in 100
pipelines of ten stages (each stage's dataset is written by one run and read by
eight, one of which registers a model that an evaluation run reads), then
`lineage` upstream from an evaluation and downstream from a pipeline's first
dataset, in-process (median of 7) and as the CLI. No peer answers either in
one command; the target is the figure beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSTEP_") and k != "PYTHONPATH"}

LOCKSTEP_REGISTER = """
import sys, time
start = time.perf_counter()
import lockstep
with lockstep.start(name="big"):
    call = time.perf_counter()
    ref = lockstep.models.register("big", "ckpt.pt")
    call = time.perf_counter() - call
print(time.perf_counter() - start, call)
"""

MLFLOW_REGISTER = """
import sys, time
start = time.perf_counter()
import mlflow
mlflow.set_tracking_uri("sqlite:///mlflow.db")
with mlflow.start_run() as run:
    call = time.perf_counter()
    mlflow.log_artifact("ckpt.pt")
    # A plain file (not an MLflow-flavoured model): registered by its artifact URI.
    client = mlflow.MlflowClient()
    client.create_registered_model("big")
    client.create_model_version("big", f"{run.info.artifact_uri}/ckpt.pt", run_id=run.info.run_id)
    call = time.perf_counter() - call
print(time.perf_counter() - start, call)
"""

HASH_ONCE = """
import time
from lockstep.objects.hashing import hash_file
start = time.perf_counter()
hash_file("ckpt.pt")
print(0, time.perf_counter() - start)
"""


def _timed(python: Path | str, code: str, cwd: Path) -> tuple[float, float]:
    """(the whole process, the registering calls alone) in seconds."""
    os.sync()  # no case pays for another's dirty pages (lockstep syncs what it stores)
    result = subprocess.run(
        [str(python), "-c", code], cwd=cwd, capture_output=True, text=True, env=ENV, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    whole, call = result.stdout.strip().splitlines()[-1].split()
    return float(whole), float(call)


def _project(base: Path, name: str, source: Path, link: str | None) -> Path:
    project = base / name
    project.mkdir()
    os.link(source, project / "ckpt.pt")  # the same bytes, no second copy on disk
    if link is not None:
        (project / ".lockstep").mkdir()
        (project / ".lockstep" / "config.toml").write_text(f'[data]\nlink = ["{link}", "copy"]\n')
    return project


Timing = tuple[float, float]


def register_cases(gib: float, peers: bool) -> list[tuple[str, Timing, Timing | None]]:
    rows: list[tuple[str, Timing, Timing | None]] = []
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        base = Path(tmp)
        source = base / "source.pt"
        chunk = os.urandom(64 << 20)
        with open(source, "wb") as handle:
            for _ in range(int(gib * 16)):
                handle.write(chunk)
        with open(source, "rb") as handle:  # into the page cache for every case
            while handle.read(64 << 20):
                pass
        floor = _timed(sys.executable, HASH_ONCE, _project(base, "hash", source, None))
        rows.append(("one BLAKE3 pass over the file (the floor)", floor, None))
        mlflow = None
        if peers and PEER_PYTHON.exists():
            mlflow = _timed(PEER_PYTHON, MLFLOW_REGISTER, _project(base, "mlflow", source, None))
        for link in ("hardlink", "reflink"):
            project = _project(base, f"lockstep-{link}", source, link)
            seconds = _timed(sys.executable, LOCKSTEP_REGISTER, project)
            objects = [p for p in (project / ".lockstep" / "objects").rglob("*") if p.is_file()]
            biggest = max(objects, key=lambda p: p.stat().st_size)
            shared = biggest.stat().st_ino == (project / "ckpt.pt").stat().st_ino
            how = "no copy: the object is the file's inode" if shared else "stored by copy"
            if link == "reflink" and not shared:
                how = "reflink unsupported here: a copy"
            rows.append((f"lockstep register, [data] link = {link} ({how})", seconds, mlflow))
        if mlflow is not None:
            rows.append(("MLflow log_artifact + model version (copies the file)", mlflow, None))
        shutil.rmtree(base, ignore_errors=True)
    return rows


def build_store(project: Path, runs: int) -> dict[str, str]:
    """The lineage store, written through lockstep's own records (no files needed)."""
    import itertools

    from lockstep.core.ids import new_run_id
    from lockstep.core.records import Artifact
    from lockstep.core.status import RunStatus
    from lockstep.meta.datasets import DatasetRecords, FileEntry
    from lockstep.meta.models import ModelRecords
    from lockstep.settings import Settings
    from lockstep.workspace import Workspace, init_store_dir

    init_store_dir(project / ".lockstep")  # here, not in an enclosing repository's store
    workspace = Workspace.open(Settings(cwd=project), create=True)
    meta = workspace.meta
    datasets = DatasetRecords(meta.engine)
    models = ModelRecords(meta.engine)
    counter = itertools.count()

    def digest() -> str:
        return f"{next(counter):064x}"

    def run(name: str, inputs: list[FileEntry], outputs: list[FileEntry]) -> str:
        run_id = new_run_id()
        now = time.time()
        meta.create_run(
            run_id=run_id,
            name=name,
            experiment="bench",
            start_time=now,
            host="h",
            pid=1,
            pid_start=None,
        )
        meta.add_artifacts(
            run_id,
            [Artifact(path=f.path, digest=f.digest, size=f.size, kind="input") for f in inputs]
            + [Artifact(path=f.path, digest=f.digest, size=f.size, kind="output") for f in outputs],
        )
        meta.set_sections(run_id, {"seed": {"value": 7}, "code": {"commit": "ab" * 20}})
        meta.finish_run(run_id, RunStatus.FINISHED, now, None)
        return run_id

    pipelines, stages = 100, 10
    per_stage = max(1, runs // (pipelines * stages) - 2)  # readers, besides producer and eval
    refs: dict[str, str] = {}
    for p in range(pipelines):
        previous: list[FileEntry] = []
        for s in range(stages):
            files = [
                FileEntry(path=f"d{p}/s{s}/{k}.bin", digest=digest(), size=100, mode=0o644)
                for k in range(5)
            ]
            run(f"prep-{p}-{s}", previous, files)
            datasets.add_version(
                name=f"d{p}-s{s}",
                manifest_digest=digest(),
                files=files,
                message="",
                source_path=f"d{p}/s{s}",
                kind="dir",
            )
            for k in range(per_stage):
                model_file = FileEntry(
                    path=f"m{p}-{s}-{k}.pt", digest=digest(), size=10, mode=0o644
                )
                trainer = run(f"train-{p}-{s}-{k}", files, [model_file])
                if k == 0:
                    version, _ = models.add_version(
                        name=f"m{p}-s{s}",
                        manifest_digest=digest(),
                        files=[model_file],
                        message="",
                        run_id=trainer,
                        created_by="bench",
                        summary={},
                    )
                    models.move_alias(
                        name=version.model, alias="production", number=1, host="h", user="u"
                    )
                    evaluation = run(f"eval-{p}-{s}", [model_file], [])
                    if p == 0 and s == stages - 1:
                        refs["upstream"] = evaluation
            previous = files
    refs["downstream"] = "d0-s0@v1"
    refs["runs"] = str(meta.count())
    workspace.close()
    return refs


def lineage_cases(runs: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        project = Path(tmp)
        refs = build_store(project, runs)
        from lockstep.models.lineage import lineage
        from lockstep.settings import Settings
        from lockstep.workspace import Workspace

        workspace = Workspace.open(Settings(cwd=project), create=False)
        rows = []
        for label, ref, downstream in (
            ("upstream of an evaluation run", refs["upstream"], False),
            ("downstream of a pipeline's first dataset", refs["downstream"], True),
        ):
            times = []
            for _ in range(7):
                start = time.perf_counter()
                graph = lineage(workspace, ref, downstream=downstream)
                times.append(time.perf_counter() - start)
            cli_start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "lockstep", "lineage", ref, "--json"]
                + (["--downstream"] if downstream else []),
                cwd=project,
                env=ENV,
                capture_output=True,
                check=True,
            )
            cli = time.perf_counter() - cli_start
            rows.append(
                (
                    f"{label}, {len(graph.nodes)} nodes, store of {refs['runs']} runs",
                    statistics.median(times) * 1000,
                    cli * 1000,
                )
            )
        workspace.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peers", action="store_true", help="lockstep figures only")
    parser.add_argument("--gib", type=float, default=1.0, help="checkpoint size (GiB)")
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the lineage store")
    args = parser.parse_args()
    print(f"## Registering a {args.gib:g} GiB checkpoint (seconds)\n")
    print("| case | the register call | whole fresh process | ratio to MLflow (call / process) |")
    print("|---|---|---|---|")
    for label, (whole, call), peer in register_cases(args.gib, not args.no_peers):
        ratio = f"{peer[1] / call:.1f}x / {peer[0] / whole:.1f}x" if peer else "-"
        shown = f"{whole:.2f}" if whole else "-"
        print(f"| {label} | {call:.3f} | {shown} | {ratio} |")
    print("\n## Lineage\n")
    print("| case | in-process (ms, median of 7) | CLI (ms) | target |")
    print("|---|---|---|---|")
    for label, ms, cli in lineage_cases(args.runs):
        print(f"| {label} | {ms:.1f} | {cli:.0f} | <= 200 |")
    print(json.dumps({"done": True}), file=sys.stderr)


if __name__ == "__main__":
    main()

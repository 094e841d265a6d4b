"""The data layer beside DVC, measured in the same run on the same files.

    python benchmarks/data.py [--no-peers] [--big-gib 2]

Each command runs as its CLI would for a user (a fresh process); the source
trees are written and synced before timing so neither tool pays for the
other's dirty pages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DVC = ROOT / ".venv-peers" / "bin" / "dvc"
LOCKSTEP = Path(sys.executable).parent / "lockstep"


# Both tools run as installed for a user: with their bytecode cached.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path) -> float:
    os.sync()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def median_of(command: list[str], cwd: Path, runs: int = 3) -> float:
    """For commands that change nothing (status): the median of a few runs."""
    return sorted(timed(command, cwd) for _ in range(runs))[runs // 2]


def small_tree(root: Path, count: int) -> None:
    for i in range(count):
        directory = root / f"{i // 1000:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{i:06d}.bin").write_bytes(os.urandom(4096))


def big_file(path: Path, gib: float) -> None:
    chunk = os.urandom(64 << 20)
    with open(path, "wb") as handle:
        for _ in range(int(gib * 16)):
            handle.write(chunk)  # repeated chunks: hashing cost is the same as random data


def lockstep_project(base: Path, name: str = "lockstep", config: str = "") -> Path:
    project = base / name
    project.mkdir()
    subprocess.run([str(LOCKSTEP), "init"], cwd=project, check=True, capture_output=True)
    (project / ".lockstep" / "config.toml").write_text(config)
    return project


def dvc_project(base: Path, name: str = "dvc", cache_type: str = "") -> Path:
    project = base / name
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([str(DVC), "init", "-q"], cwd=project, check=True)
    subprocess.run([str(DVC), "config", "core.analytics", "false"], cwd=project, check=True)
    if cache_type:
        subprocess.run([str(DVC), "config", "cache.type", cache_type], cwd=project, check=True)
    return project


HARDLINKS = '[data]\nlink = ["hardlink", "copy"]\n'


def add_with_hardlinks(base: Path, source: Path, peers: bool) -> dict[str, float]:
    """`add` when both tools are configured to link files into their cache."""
    ours = lockstep_project(base, "lockstep-links", HARDLINKS)
    copy = shutil.copytree if source.is_dir() else shutil.copyfile
    copy(source, ours / source.name)
    row = {"lockstep": timed([str(LOCKSTEP), "data", "add", source.name], ours)}
    if peers:
        theirs = dvc_project(base, "dvc-links", "hardlink")
        copy(source, theirs / source.name)
        row["dvc"] = timed([str(DVC), "add", "-q", source.name], theirs)
        shutil.rmtree(theirs)
    shutil.rmtree(ours)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-peers", action="store_true", help="skip DVC")
    parser.add_argument("--big-gib", type=float, default=2.0)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--status-files", type=int, default=100_000)
    args = parser.parse_args()
    peers = not args.no_peers and DVC.exists()
    for tool in (LOCKSTEP, DVC) if peers else (LOCKSTEP,):  # compile and cache bytecode
        subprocess.run([str(tool), "--version"], capture_output=True, check=False, env=ENV)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(
        dir=ROOT / ".bench" if (ROOT / ".bench").is_dir() else None
    ) as tmp:
        base = Path(tmp)
        ours, theirs = lockstep_project(base), dvc_project(base) if peers else None

        big = ours / "big.bin"
        big_file(big, args.big_gib)
        row = {"lockstep": timed([str(LOCKSTEP), "data", "add", "big.bin"], ours)}
        if theirs:
            shutil.copyfile(big, theirs / "big.bin")
            row["dvc"] = timed([str(DVC), "add", "-q", "big.bin"], theirs)
        results[f"add one {args.big_gib:g} GiB file, durable (s)"] = row
        # The same without forcing the bytes to disk: DVC's own durability model.
        shutil.rmtree(ours / ".lockstep")
        subprocess.run([str(LOCKSTEP), "init"], cwd=ours, check=True, capture_output=True)
        (ours / ".lockstep" / "config.toml").write_text("[data]\nfsync = false\n")
        results[f"add one {args.big_gib:g} GiB file, no fsync like DVC (s)"] = {
            "lockstep": timed([str(LOCKSTEP), "data", "add", "big.bin"], ours),
            "dvc": row.get("dvc", 0.0),
        }
        (ours / ".lockstep" / "config.toml").write_text("")
        results[f"add one {args.big_gib:g} GiB file, hardlinks in both (s)"] = add_with_hardlinks(
            base, big, peers
        )
        big.unlink()
        if theirs:
            (theirs / "big.bin").unlink()

        small_tree(ours / "small", args.small)
        row = {"lockstep": timed([str(LOCKSTEP), "data", "add", "small"], ours)}
        if theirs:
            shutil.copytree(ours / "small", theirs / "small")
            row["dvc"] = timed([str(DVC), "add", "-q", "small"], theirs)
        results[f"add {args.small:,} x 4 KiB files, durable (s)"] = row
        results[f"add {args.small:,} x 4 KiB files, hardlinks in both (s)"] = add_with_hardlinks(
            base, ours / "small", peers
        )

        row = {"lockstep": median_of([str(LOCKSTEP), "data", "status", "small"], ours)}
        if theirs:
            row["dvc"] = median_of([str(DVC), "status", "-q", "small.dvc"], theirs)
        results[f"no-change status, {args.small:,} files (s)"] = row

        (ours / ".lockstep" / "config.toml").write_text(HARDLINKS)
        row = {
            "lockstep": timed(
                [str(LOCKSTEP), "data", "checkout", "small", "--to", "small-out"], ours
            )
        }
        if theirs:
            subprocess.run([str(DVC), "config", "cache.type", "hardlink"], cwd=theirs, check=True)
            shutil.rmtree(theirs / "small")
            row["dvc"] = timed([str(DVC), "checkout", "-q", "small.dvc"], theirs)
        results[f"checkout {args.small:,} files, hardlinks (s)"] = row
        (ours / ".lockstep" / "config.toml").write_text("")
        shutil.rmtree(ours / "small-out")
        results[f"checkout {args.small:,} files, copies (s)"] = {
            "lockstep": timed(
                [str(LOCKSTEP), "data", "checkout", "small", "--to", "small-out"], ours
            )
        }

        shutil.rmtree(ours / "small-out")
        shutil.rmtree(ours / "small")
        if theirs:
            shutil.rmtree(theirs / "small", ignore_errors=True)
        small_tree(ours / "many", args.status_files)
        timed([str(LOCKSTEP), "data", "add", "many"], ours)
        row = {"lockstep": median_of([str(LOCKSTEP), "data", "status", "many"], ours)}
        if theirs:
            shutil.copytree(ours / "many", theirs / "many")
            timed([str(DVC), "add", "-q", "many"], theirs)
            row["dvc"] = median_of([str(DVC), "status", "-q", "many.dvc"], theirs)
        results[f"no-change status, {args.status_files:,} files (s)"] = row
        row = {"lockstep": median_of([str(LOCKSTEP), "data", "add", "many"], ours)}
        if theirs:
            row["dvc"] = median_of([str(DVC), "add", "-q", "many"], theirs)
        results[f"add again, unchanged, {args.status_files:,} files (s)"] = row

    print(json.dumps(results))
    version = ""
    if peers:
        version = subprocess.run(
            [str(DVC), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    print(f"\n| case | lockstep | DVC {version} | ratio |")
    print("|---|---|---|---|")
    for case, row in results.items():
        dvc = row.get("dvc")
        ratio = f"{dvc / row['lockstep']:.1f}x" if dvc else "-"
        print(f"| {case} | {row['lockstep']:.2f} | {f'{dvc:.2f}' if dvc else '-'} | {ratio} |")


if __name__ == "__main__":
    main()

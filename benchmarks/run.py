"""Run every tracking benchmark and print lockstep beside MLflow, measured in the same run.

    python benchmarks/run.py [--no-peers] [--json FILE]

Each case runs in a fresh interpreter. MLflow runs from its own virtual
environment (.venv-peers, created on first use) so the two never share packages.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT / ".venv-peers"
PEER_PYTHON = PEERS / "bin" / "python"


def case(python: Path | str, script: str, name: str) -> dict[str, float]:
    result = subprocess.run(
        [str(python), str(HERE / script), name],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} {name} failed:\n{result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def import_ms(python: Path | str, module: str, repeat: int = 9) -> float:
    """Median wall time of importing module, above a bare interpreter."""

    def median(code: str) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([str(python), "-c", code], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return (median(f"import {module}") - median("pass")) * 1000


def ensure_peers() -> bool:
    """MLflow in .venv-peers; installed on first use. False when it cannot be installed."""
    if PEER_PYTHON.exists():
        check = subprocess.run(
            [str(PEER_PYTHON), "-c", "import mlflow"], capture_output=True, check=False
        )
        if check.returncode == 0:
            return True
    print("installing MLflow into .venv-peers for the comparison ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run(
            [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "mlflow>=3,<4"],
            check=True,
            timeout=1200,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"MLflow unavailable ({exc}); lockstep figures only", file=sys.stderr)
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-peers", action="store_true", help="skip MLflow")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    ours = sys.executable
    peers = not args.no_peers and ensure_peers()

    rows: list[tuple[str, str, str, str, str]] = []
    figures: dict[str, object] = {}

    # Like for like: one call per step with the same 10 keys on both sides (MLflow's
    # log_metrics, synchronous and asynchronous), each in a fresh process from its import
    # to the run ended and one series read back.
    end_to_end = case(ours, "tracking_lockstep.py", "log_end_to_end")
    figures["log_end_to_end"] = end_to_end
    peer_sync = case(PEER_PYTHON, "tracking_mlflow.py", "log_metrics_sync") if peers else None
    peer_async = case(PEER_PYTHON, "tracking_mlflow.py", "log_metrics_async") if peers else None
    figures["mlflow_log_metrics_sync"] = peer_sync
    figures["mlflow_log_metrics_async"] = peer_async
    rows.append(
        (
            "10 keys per call, fresh process: import, log, finish, read back (points/s; "
            "lockstep 100k steps, MLflow 1k sync / 5k async)",
            f"{end_to_end['points_per_s']:,.0f}",
            f"{peer_sync['points_per_s']:,.0f} sync / {peer_async['points_per_s']:,.0f} async"
            if peer_sync and peer_async
            else "-",
            f"{end_to_end['points_per_s'] / peer_sync['points_per_s']:,.0f}x / "
            f"{end_to_end['points_per_s'] / peer_async['points_per_s']:,.0f}x"
            if peer_sync and peer_async
            else "-",
            ">= 1,000,000",
        )
    )
    log = case(ours, "tracking_lockstep.py", "log")
    figures["log"] = log
    peer_batch = case(PEER_PYTHON, "tracking_mlflow.py", "log_batch") if peers else None
    figures["mlflow_log_batch"] = peer_batch
    rows.append(
        (
            "warm process (store already open): 10 keys x 100k steps, stored + read back "
            "(points/s; MLflow: log_batch of 1,000 points)",
            f"{log['points_per_s']:,.0f}",
            f"{peer_batch['points_per_s']:,.0f} batch" if peer_batch else "-",
            f"{log['points_per_s'] / peer_batch['points_per_s']:,.0f}x" if peer_batch else "-",
            "-",
        )
    )
    rows.append(
        ("  of which: one run.log call (us, 10 keys)", f"{log['log_call_us']:.1f}", "-", "-", "-")
    )

    for name, label, target in (
        ("search_1k", "runs(filter, sort) 1k runs, all 37% matches loaded (ms)", "<= 20"),
        ("search_1k_page", "runs(filter, sort, limit=100) over 1k runs (ms)", "-"),
        ("search_100k", "runs(filter, sort, limit=100) over 100k runs (ms)", "<= 300"),
    ):
        result = case(ours, "tracking_lockstep.py", name)
        figures[name] = result
        peer = None
        if peers and name == "search_1k":
            peer = case(PEER_PYTHON, "tracking_mlflow.py", "search_1k")
            figures["mlflow_search_1k"] = peer
        rows.append(
            (
                label,
                f"{result['ms']:.1f}",
                f"{peer['ms']:.1f}" if peer else "-",
                f"{peer['ms'] / result['ms']:.0f}x" if peer else "-",
                target,
            )
        )

    history = case(ours, "tracking_lockstep.py", "history_1m")
    figures["history_1m"] = history
    peer_history = case(PEER_PYTHON, "tracking_mlflow.py", "history") if peers else None
    figures["mlflow_history"] = peer_history
    if peer_history:
        # Per point, since MLflow cannot store a million points in reasonable time.
        ours_per_point = history["ms"] / history["points"]
        theirs_per_point = peer_history["ms"] / peer_history["points"]
        peer_cell = f"{peer_history['ms']:.0f} for {peer_history['points']:,.0f} points"
        ratio = f"{theirs_per_point / ours_per_point:,.0f}x per point"
    else:
        peer_cell, ratio = "-", "-"
    rows.append(
        (
            "metric_history of 1,000,000 points (ms)",
            f"{history['ms']:.1f}",
            peer_cell,
            ratio,
            "<= 50",
        )
    )

    ours_import = import_ms(ours, "lockstep")
    peer_import = import_ms(PEER_PYTHON, "mlflow", repeat=3) if peers else None
    figures["import_ms"], figures["mlflow_import_ms"] = ours_import, peer_import
    rows.append(
        (
            "import (ms above a bare interpreter)",
            f"{ours_import:.0f}",
            f"{peer_import:.0f}" if peer_import else "-",
            f"{peer_import / ours_import:.0f}x" if peer_import else "-",
            "<= 150",
        )
    )

    capture = subprocess.run(
        [ours, str(HERE / "capture.py")], capture_output=True, text=True, check=True, timeout=1800
    )
    cap = json.loads(capture.stdout.strip().splitlines()[-1])
    figures["capture"] = cap
    rows.append(
        (
            "capture at run start: git + packages + hardware (ms)",
            f"{cap['gatherers']['total_ms']:.0f}",
            "-",
            "-",
            "<= 200",
        )
    )
    rows.append(
        (
            "`lockstep run -- python -c pass` overhead, git repo (ms)",
            f"{cap['run_pass']['overhead_ms']:.0f}",
            "-",
            "-",
            "<= 400",
        )
    )
    rows.append(
        (
            "`lockstep run` overhead on a 1 s command (ms)",
            f"{cap['run_1s']['overhead_ms']:.0f}",
            "-",
            "-",
            "-",
        )
    )
    rows.append(
        (
            "file-open audit hook, per open (us)",
            f"{cap['audit_hook']['hook_us']:.1f}",
            "-",
            "-",
            "< 5",
        )
    )

    header = ("case", "lockstep", "MLflow 3 (sqlite)", "ratio", "target")
    print(
        f"\nTracking benchmark, {date.today()}, {platform.machine()} "
        f"{platform.processor() or ''} Python {platform.python_version()}\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The end-to-end demo: train twice with lockstep tracking, then list, filter and inspect runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
demo="$here/../.demo"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
unset LOCKSTEP_HOME LOCKSTEP_DB_URL

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step lockstep init
# Plain Python with the tracking API ...
step python "$here/train.py" --lr 0.05
# ... and the same script under `lockstep run`: code, data, seeds, packages, hardware captured.
step lockstep run --seed 7 -p lr=0.5 -- python "$here/train.py" --lr 0.5
step lockstep runs
step lockstep runs --filter "params.optimizer.lr > 0.1 and metrics.accuracy >= 0.8" --sort -metrics.accuracy
step lockstep show last
step lockstep metrics last loss -n 3
step lockstep env export last --format dockerfile
printf '\nDemo finished: the store is in %s\n' "$demo/.lockstep"

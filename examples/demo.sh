#!/usr/bin/env bash
# The end-to-end demo: track, capture, rerun and verify, then find out why two runs differ.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
demo="$here/../.demo"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
unset LOCKSTEP_HOME LOCKSTEP_DB_URL

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A small project: a training script in git, its data generated and kept out of git.
cp "$here/train_csv.py" train.py
printf 'data/\n*.npy\n' > .gitignore
python "$here/make_data.py"
git init -q -b main
git add train.py .gitignore
git -c user.name=demo -c user.email=demo@example.com commit -qm "training script"

step lockstep init
# 1. Plain tracking from Python ...
step python "$here/train.py" --lr 0.05
# 2. ... and an unmodified, unseeded script under `lockstep run`: everything it depends on captured.
step lockstep run --name baseline --seed 7 -- python train.py
step lockstep show baseline
# 3. Rerun it from the record alone and judge the result.
step lockstep verify baseline
# 4. Change one value in the (git-ignored) data and train again with the same seed.
step python "$here/make_data.py" --change-one-value
step lockstep run --name changed --seed 7 -- python train.py
step lockstep diff baseline changed
step lockstep verify baseline --against changed || echo "(exit code $?: not reproduced, as a CI gate would see it)"
step lockstep explain baseline changed
step lockstep runs
step lockstep report baseline -o report.md
printf '\nDemo finished: the store is in %s, the report in %s\n' "$demo/.lockstep" "$demo/report.md"

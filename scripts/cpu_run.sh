#!/usr/bin/env bash
# The long from-scratch CPU training run of issue 12, carried across work sessions.
#
#   bash scripts/cpu_run.sh start  [MINUTES]   # a fresh run into runs/cpu-scratch
#   bash scripts/cpu_run.sh resume [MINUTES]   # continue it (restores runs/cpu-scratch from training/ first)
#   bash scripts/cpu_run.sh save               # copy its newest checkpoint and logs into training/ (committed)
#
# A session's working tree is rebuilt from git, so the run's state (config, logs, newest checkpoint with
# optimizer and RNG state, ~1 MB) is committed under training/runs/cpu-scratch; `resume` puts it back and
# continues bit-exactly (the trainer checks that the config is unchanged). Ctrl-C or kill stops cleanly.
# THREADS (default 1) leaves the other core free for other work. FORCE=1 resumes after a config change
# (e.g. a lower learning rate; the optimizer's moments are kept, its lr becomes the config's).
# NAME=cpu-scratch-col25 SET="--set loss.weights.color=25" works on a branch of the run (session 4's A/B).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=runs/${NAME:-cpu-scratch}
SAVED=training/runs/${NAME:-cpu-scratch}
CONFIG=configs/scl_cpu.yaml
pool() { [ -f .devdata/contrast_pool/pool.json ] || sclle prepare-contrast ../shared/data/sice_part1 --out .devdata/contrast_pool; }
case "${1:-}" in
  start)
    pool
    OMP_NUM_THREADS=${THREADS:-1} sclle train --config "$CONFIG" --out "$RUN" --time-budget-min "${2:-120}" ;;
  resume)
    pool
    if [ ! -d "$RUN/checkpoints" ]; then mkdir -p "$RUN" && cp -r "$SAVED"/. "$RUN"/; fi
    OMP_NUM_THREADS=${THREADS:-1} sclle train --config "$CONFIG" --out "$RUN" --resume ${FORCE:+--force} ${SET:-} --time-budget-min "${2:-120}" ;;
  save)
    newest=$(ls "$RUN"/checkpoints/step_*.pt | sort | tail -1)
    rm -rf "$SAVED" && mkdir -p "$SAVED/checkpoints"
    cp "$RUN"/config.yaml "$RUN"/log.csv "$SAVED"/
    [ -f "$RUN"/val.csv ] && cp "$RUN"/val.csv "$SAVED"/
    cp "$newest" "$SAVED/checkpoints/"
    # no sample grids: they are crops of the research-use-only datasets, which are not redistributed
    echo "saved $(basename "$newest") to $SAVED" ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac

#!/usr/bin/env bash
# Table 3 of the paper with sclle's CPU recipe (issue 12): the full objective, without L_c, and without L_sc,
# each trained from scratch for the same number of steps (configs/scl_cpu_ablation*.yaml), across sessions.
#
#   bash scripts/ablation_cpu.sh run [MINUTES]   # rotate the three runs in TURN-minute turns (default 20)
#   bash scripts/ablation_cpu.sh save            # newest checkpoint + logs of each into training/ (committed)
#   bash scripts/ablation_cpu.sh status          # the step each run has reached
#
# Turns keep the three runs at about the same step whenever a session ends. Each run lives in runs/abl-NAME
# and is restored from training/runs/abl-NAME when a session's working tree lacks it (as scripts/cpu_run.sh
# does for the default's run); `run` saves after every turn. THREADS (default 1) leaves a core free.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=(full no-lc no-lsc)
config() { case "$1" in full) echo configs/scl_cpu_ablation.yaml ;; *) echo "configs/scl_cpu_ablation_${1//-/_}.yaml" ;; esac; }
newest() { ls "$1"/checkpoints/step_*.pt 2>/dev/null | sort | tail -1; }
step_of() { local f; f=$(newest "$1"); [ -n "$f" ] && basename "$f" .pt | sed 's/step_0*//; s/^$/0/' || echo 0; }
target() { python -c "from sclle.train.config import load_config; print(load_config('$(config "$1")').schedule.steps)"; }
restore() { [ -n "$(newest "runs/abl-$1")" ] || { [ -d "training/runs/abl-$1" ] && mkdir -p "runs/abl-$1" && cp -r "training/runs/abl-$1"/. "runs/abl-$1"/; } || true; }
save_one() {
  local run=runs/abl-$1 saved=training/runs/abl-$1 f
  f=$(newest "$run"); [ -n "$f" ] || return 0
  rm -rf "$saved" && mkdir -p "$saved/checkpoints"
  cp "$run"/config.yaml "$run"/log.csv "$saved"/
  [ -f "$run"/val.csv ] && cp "$run"/val.csv "$saved"/
  cp "$f" "$saved/checkpoints/"  # no sample grids: crops of research-use-only images
  echo "saved $(basename "$f") to $saved"
}
case "${1:-}" in
  run)
    [ -f .devdata/contrast_pool/pool.json ] || sclle prepare-contrast ../shared/data/sice_part1 --out .devdata/contrast_pool
    end=$((SECONDS + ${2:-120} * 60))
    while :; do
      moved=0
      for n in "${NAMES[@]}"; do
        restore "$n"
        [ "$(step_of "runs/abl-$n")" -lt "$(target "$n")" ] || continue
        left=$(((end - SECONDS) / 60)); [ "$left" -ge 2 ] || break 2
        turn=$((left < ${TURN:-20} ? left : ${TURN:-20}))
        resume=(); [ -n "$(newest "runs/abl-$n")" ] && resume=(--resume)
        echo "== abl-$n from step $(step_of "runs/abl-$n"), $turn min"
        OMP_NUM_THREADS=${THREADS:-1} sclle train --config "$(config "$n")" --out "runs/abl-$n" "${resume[@]}" --time-budget-min "$turn"
        save_one "$n"; moved=1
      done
      [ "$moved" = 1 ] || break
    done ;;
  save) for n in "${NAMES[@]}"; do save_one "$n"; done ;;
  status) for n in "${NAMES[@]}"; do restore "$n"; echo "abl-$n: step $(step_of "runs/abl-$n") of $(target "$n")"; done ;;
  *) sed -n 2,11p "$0"; exit 2 ;;
esac

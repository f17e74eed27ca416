#!/usr/bin/env bash
# Table 3 of the paper with sclle's CPU recipe (issue 12): the full objective, without L_c, and without L_sc,
# each trained from scratch for the same number of steps (configs/scl_cpu_ablation*.yaml), across sessions.
#
#   bash scripts/ablation_cpu.sh run [MINUTES]   # turns of TURN minutes (default 20), always to the run that is behind
#   bash scripts/ablation_cpu.sh save            # newest checkpoint + logs of each into training/ (committed)
#   bash scripts/ablation_cpu.sh status          # the step each run has reached
#
# Each turn goes to the run with the fewest steps, so the three stay level whenever a session ends. A run lives
# in runs/abl-NAME and is restored from training/runs/abl-NAME when a session's working tree lacks it (as
# scripts/cpu_run.sh does for the default's run); `run` saves it after every turn. Ctrl-C or kill stops the
# current turn cleanly (the trainer checkpoints), saves it and ends the rotation. A run whose training fails is
# named and left out of the rest of the rotation. THREADS (default 1) leaves a core free.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=(full no-lc no-lsc)
MIN_TURN=5  # minutes: below this a turn is mostly start-up
config() { case "$1" in full) echo configs/scl_cpu_ablation.yaml ;; *) echo "configs/scl_cpu_ablation_${1//-/_}.yaml" ;; esac; }
newest() { ls "$1"/checkpoints/step_*.pt 2>/dev/null | sort | tail -1 || true; }
step_of() { local f; f=$(newest "$1"); if [ -n "$f" ]; then basename "$f" .pt | sed 's/step_0*//; s/^$/0/'; else echo 0; fi; }
restore() {
  [ -z "$(newest "runs/abl-$1")" ] && [ -d "training/runs/abl-$1" ] || return 0
  rm -rf "runs/abl-$1" && mkdir -p "runs/abl-$1" && cp -r "training/runs/abl-$1"/. "runs/abl-$1"/
}
save_one() {  # into a fresh folder first, swapped in whole: a failed copy never loses the saved state
  local run=runs/abl-$1 saved=training/runs/abl-$1 f
  f=$(newest "$run"); [ -n "$f" ] || return 0
  rm -rf "$saved.new" && mkdir -p "$saved.new/checkpoints"
  cp "$run"/config.yaml "$run"/log.csv "$saved.new"/
  if [ -f "$run"/val.csv ]; then cp "$run"/val.csv "$saved.new"/; fi
  cp "$f" "$saved.new/checkpoints/"  # no sample grids: crops of research-use-only images
  rm -rf "$saved" && mv "$saved.new" "$saved"
  echo "saved $(basename "$f") to $saved"
}
declare -A TARGET
for n in "${NAMES[@]}"; do
  TARGET[$n]=$(python -c "from sclle.train.config import load_config; print(load_config('$(config "$n")').schedule.steps)")
done
case "${1:-}" in
  run)
    [ -f .devdata/contrast_pool/pool.json ] || sclle prepare-contrast ../shared/data/sice_part1 --out .devdata/contrast_pool
    end=$((SECONDS + ${2:-120} * 60)); stop=""; declare -A failed
    trap 'stop=1' INT TERM
    while [ -z "$stop" ]; do
      pick=""; low=""
      for n in "${NAMES[@]}"; do
        restore "$n"; s=$(step_of "runs/abl-$n")
        if [ -z "${failed[$n]:-}" ] && [ "$s" -lt "${TARGET[$n]}" ] && { [ -z "$low" ] || [ "$s" -lt "$low" ]; }; then
          pick=$n; low=$s
        fi
      done
      [ -n "$pick" ] || { echo "every run is done (or failed)"; break; }
      left=$(((end - SECONDS) / 60)); [ "$left" -ge "$MIN_TURN" ] || { echo "time is up"; break; }
      turn=$((left < ${TURN:-20} ? left : ${TURN:-20}))
      resume=(); [ -n "$(newest "runs/abl-$pick")" ] && resume=(--resume)
      echo "== abl-$pick from step $low, $turn min"
      if ! OMP_NUM_THREADS=${THREADS:-1} sclle train --config "$(config "$pick")" --out "runs/abl-$pick" \
          "${resume[@]}" --time-budget-min "$turn"; then
        echo "abl-$pick: training failed; left out of this rotation" >&2; failed[$pick]=1
      fi
      save_one "$pick"
    done ;;
  save) for n in "${NAMES[@]}"; do save_one "$n"; done ;;
  status) for n in "${NAMES[@]}"; do restore "$n"; echo "abl-$n: step $(step_of "runs/abl-$n") of ${TARGET[$n]}"; done ;;
  *) sed -n 2,13p "$0"; exit 2 ;;
esac

#!/usr/bin/env bash
# Score the three runs of scripts/ablation_cpu.sh (Table 3 of the paper with sclle's CPU recipe, issue 12):
# the bare networks (strength 1, no exposure rule: the paper's comparison) on the scorecard's protocols,
# mIoU at gamma 6 and 10 included, each column compared with the full objective by a paired bootstrap.
#
#   bash scripts/score_ablations.sh [STEP] [LIMIT]   # default: step 2000, 64 images per protocol (mIoU: always 100)
#
# Writes reports/ablations/{scorecard.md,scorecard.json,...} and a contact sheet of the three.
set -euo pipefail
cd "$(dirname "$0")/.."
step=$(printf '%07d' "${1:-2000}")
limit=${2:-64}
methods=input
for n in full no-lc no-lsc; do
  ckpt=training/runs/abl-$n/checkpoints/step_$step.pt
  [ -f "$ckpt" ] || { echo "missing $ckpt (bash scripts/ablation_cpu.sh status)" >&2; exit 1; }
  methods+=",abl-$n=$ckpt"
done
sclle benchmark --limit "$limit" --no-speed --miou -q -m "$methods" --sheet "$methods" \
  --against abl-full -o reports/ablations

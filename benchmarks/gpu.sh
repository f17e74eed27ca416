#!/usr/bin/env bash
# Frames/s of the bundled model on one CUDA GPU: 1920x1080 and 3840x2160, exact and fast, fp16 (issue 15, item 6).
# Frames are already on the GPU (compute throughput; host transfers are not timed). Each configuration
# is run with the engine's default auto-tiling and untiled (--tile 0), since tiles only bound memory.
#   bash benchmarks/gpu.sh [FRAMES]      # default 30 frames per configuration; JSON on the last line
# Exits 0 with "no CUDA, skipped" where there is no GPU.
set -euo pipefail
FRAMES="${1:-30}"
exec python - "$FRAMES" <<'PY'
import json, sys, time
import torch

if not torch.cuda.is_available():
    print("no CUDA, skipped (benchmarks/gpu.sh measures GPU frames/s only)")
    sys.exit(0)
from sclle.enhancement.engine import Engine, EngineConfig
from sclle.models.registry import load_weights

frames = int(sys.argv[1])
net, entry = load_weights(None)
scale = entry.fast_scale if entry is not None else 0.25
dev = torch.device("cuda")
print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}, fast scale {scale}, {frames} frames")
rows = []
for h, w in ((1080, 1920), (2160, 3840)):
    x = torch.rand(1, 3, h, w, device=dev) * 0.3
    for mode in ("exact", "fast"):
        for tile in (None, 0):
            eng = Engine(net, EngineConfig(precision="fp16", fast_scale=scale if mode == "fast" else None,
                                           tile=tile), dev)
            for _ in range(3):
                eng(x)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(frames):
                eng(x)
            torch.cuda.synchronize()
            fps = frames / (time.perf_counter() - t0)
            r = {"size": f"{w}x{h}", "mode": mode, "tile": "auto" if tile is None else "off", "fps": fps}
            rows.append(r)
            print(f"{r['size']:>10} {mode:>5} tile {r['tile']:>4}: {fps:8.1f} frames/s", flush=True)
print(json.dumps(rows))
PY

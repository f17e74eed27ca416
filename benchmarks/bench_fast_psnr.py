"""Fast mode fidelity: PSNR of fast (curves at a lower scale) against exact, on real photos.

Also reports the "upsampling only" bound: exact curve maps downsampled by the scale and upsampled
back, which isolates the loss due to the network seeing a smaller image.

    python benchmarks/bench_fast_psnr.py --model scl-lle-official --weights ../shared/weights/SCL-LLE.pth \
        --data ../shared/data/DICM ../shared/data/LIME
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from sclle import imageio
from sclle.models.dce import apply_curves, fast_curves
from sclle.models.registry import load_weights


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--scales", default="0.5,0.25")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net, _ = load_weights(a.model or a.weights, weights=a.weights if a.model else None)
    scales = [float(s) for s in a.scales.split(",")]
    items, _ = imageio.find_images(a.data)
    res: dict[str, list[float]] = {f"fast {s}": [] for s in scales}
    res.update({f"upsample-only {s}": [] for s in scales})
    with torch.inference_mode():
        for p, _ in tqdm(items, desc="images"):
            x = imageio.to_tensor(imageio.read_image(p).rgb)
            c = net(x)
            exact = apply_curves(x, c)
            for s in scales:
                res[f"fast {s}"].append(psnr(apply_curves(x, fast_curves(net, x, s)), exact))
                h, w = x.shape[-2:]
                small = F.interpolate(c, scale_factor=s, mode="bilinear", antialias=True, align_corners=False)
                up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
                res[f"upsample-only {s}"].append(psnr(apply_curves(x, up), exact))
    summary = {k: sum(v) / len(v) for k, v in res.items()}
    for k, v in summary.items():
        print(f"{k:>20}: mean PSNR vs exact {v:.2f} dB over {len(items)} images")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"model": a.model or a.weights, "mean_psnr_db": summary}, indent=1))


if __name__ == "__main__":
    main()

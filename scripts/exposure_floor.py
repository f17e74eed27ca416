"""Choose the adaptive exposure's floor (``lo``) on training data: what a minimum strength buys and costs.

``scripts/fit_exposure.py`` fits ``s = clamp(a + b*log_mean + c*log_highlights, lo, hi)`` by PSNR/SSIM
against references, with ``lo = 0``. Its references are the un-enhanced photos, so every lift of an
already well-lit photo counts as an error, and the fit leaves such photos exactly alone (``s = 0``), even
backlit ones with dark foregrounds that every released enhancer lifts. A floor trades the two: for each
candidate ``lo`` this reports, on *training* data only,

* NIQE of real photos enhanced at that floor: SICE Part1 frames of the training scenes (held-out list
  excluded) that are neither very dark nor over-exposed (mean luma 0.12-0.5, where the floor decides);
* how much the floor changes well-exposed photos: CamVid *train* images not darkened, PSNR of the
  output against the input and the fraction of pixels newly clipped to 1.

    python scripts/exposure_floor.py --model runs/cpu-scratch/export/sclle-cpu-scratch.safetensors \
        --fit reports/exposure_fit.json --floors 0,0.2,0.3,0.4,0.5 --out reports/exposure_floor.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sclle.core.files import atomic_write, natural_sorted
from sclle.data.pool_builder import training_scenes
from sclle.imageio import read_image, to_tensor
from sclle.metrics import create
from sclle.models.base import apply_le_curves, scale_curves
from sclle.models.exposure import adaptive_strength
from sclle.models.registry import load_weights

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def real_photos(data_root: Path, scenes: int, seed: int, lo: float = 0.12, hi: float = 0.5):
    """(name, image) of SICE training-scene frames whose mean luma lies in [lo, hi]."""
    for scene, frames, _ in training_scenes(data_root / "sice_part1", scenes, seed):
        for k, frame in enumerate(frames):
            x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255.0
            if lo <= float((x * LUMA).sum(1).mean()) <= hi:
                yield f"{scene.id}_{k}", x


def strengths(x: torch.Tensor, e: dict, floors: list[float]) -> list[float]:
    return [float(adaptive_strength(x, **{**e, "lo": lo})[0]) for lo in floors]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--fit", type=Path, required=True, help="JSON written by scripts/fit_exposure.py")
    ap.add_argument("--hi", type=float, default=None, help="override the fit's hi")
    ap.add_argument("--floors", default="0,0.2,0.3,0.4,0.5")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--camvid-normal", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("reports/exposure_floor.json"))
    a = ap.parse_args()
    e = dict(json.loads(a.fit.read_text())["exposure"])
    if a.hi is not None:
        e["hi"] = a.hi
    floors = [float(f) for f in a.floors.split(",")]
    net, _ = load_weights(a.model)
    net.exposure = None
    niqe, psnr = create("niqe"), create("psnr")
    res: dict[float, dict[str, list[float]]] = {f: {"niqe": [], "psnr": [], "clipped": []} for f in floors}
    with torch.no_grad():
        for _, x in tqdm(list(real_photos(a.data_root, a.scenes, a.seed)), desc="SICE frames", unit="img"):
            c = net(x)
            for f, s in zip(floors, strengths(x, e, floors), strict=True):
                res[f]["niqe"].append(float(niqe(apply_le_curves(x, scale_curves(c, s)))))
        files = natural_sorted(
            p for p in (a.data_root / "camvid" / "train").iterdir() if p.suffix in (".png", ".jpg")
        )
        for p in tqdm(random.Random(a.seed + 2).sample(files, a.camvid_normal), desc="CamVid", unit="img"):
            x = to_tensor(read_image(p).rgb)
            c = net(x)
            for f, s in zip(floors, strengths(x, e, floors), strict=True):
                y = apply_le_curves(x, scale_curves(c, s))
                res[f]["psnr"].append(min(float(psnr(y, x)), 100.0))
                res[f]["clipped"].append(float(((y >= 1.0) & (x < 1.0)).float().mean()))
    table = {
        str(f): {
            "sice_train_niqe": round(float(np.mean(r["niqe"])), 4),
            "camvid_train_normal_psnr": round(float(np.mean(r["psnr"])), 2),
            "camvid_train_normal_clipped": round(float(np.mean(r["clipped"])), 5),
        }
        for f, r in res.items()
    }
    out = {"model": a.model, "exposure": e, "n_sice": len(res[floors[0]]["niqe"]), "floors": table}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(a.out, json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

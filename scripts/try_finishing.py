"""Two finishing steps after the curves that were tried for the default and *not* kept (docs/results.md, session 12).

``highlight``: on the exposure fit's training pairs (never the scorecard's images), each image's strength s > 1
is eased towards 1 where the input is bright, ``s(p) = 1 + (s - 1) * (1 - w * smoothstep(t0, t1, L(p)))``
(``L`` the input's luma, optionally blurred), to spare lit skies; PSNR/SSIM per kind against strength s everywhere.

``denoise``: the default's output on DICM and LIME (the scorecard's 64 / 9) denoised by OpenCV (non-local
means, bilateral), NIQE and PIQE before and after: does removing the lifted sensor noise help those scores?

    python scripts/try_finishing.py highlight --data-root ../shared/data     # ~10 min, one thread
    python scripts/try_finishing.py denoise --data-root ../shared/data       # ~4 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

sys.path.insert(0, str(Path(__file__).parent))
from fit_exposure import training_pairs  # noqa: E402  (a sibling script: the same training pairs)

from sclle.metrics import create  # noqa: E402
from sclle.models.base import apply_le_curves, scale_curves  # noqa: E402
from sclle.models.exposure import LUMA  # noqa: E402
from sclle.models.registry import load_weights  # noqa: E402


def _half(t: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(t, scale_factor=0.5, mode="bilinear", antialias=True)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]


def highlight(data_root: Path) -> None:
    net, _ = load_weights("sclle-default")
    net.eval()
    psnr, ssim = create("psnr"), create("ssim")
    variants: dict[str, tuple | None] = {"strength s everywhere": None}
    for t0, t1 in ((0.2, 0.6), (0.3, 0.7), (0.4, 0.8)):
        for w in (0.5, 1.0):
            for blur in (0.0, 0.02):
                variants[f"t0 {t0} t1 {t1} w {w} blur {blur}"] = (t0, t1, w, blur)
    scores: dict[str, dict[str, list]] = {k: {} for k in variants}
    for kind, _, x, ref in training_pairs(data_root, 60, 120, 40, 0):
        with torch.no_grad():
            s = net.image_strength(x).view(-1, 1, 1, 1)
            c, xs, rs = _half(net(x)), _half(x), _half(ref)
            for name, v in variants.items():
                smap = s
                if v is not None and float(s) > 1:
                    t0, t1, w, blur = v
                    lum = _luma(xs)
                    if blur:
                        k = max(3, int(blur * max(lum.shape[-2:])) | 1)
                        lum = TF.gaussian_blur(lum, [k, k], [k / 6, k / 6])
                    u = ((lum - t0) / (t1 - t0)).clamp(0, 1)
                    smap = 1 + (s - 1) * (1 - w * u * u * (3 - 2 * u))
                y = apply_le_curves(xs, scale_curves(c, smap))
                scores[name].setdefault(kind, []).append((float(psnr(y, rs)), float(ssim(y, rs))))
    for name, d in scores.items():
        cells = [
            f"{k} {np.mean([p for p, _ in v]):.3f} / {np.mean([q for _, q in v]):.4f}" for k, v in d.items()
        ]
        print(f"{name:32s} " + " | ".join(cells))


def denoise(data_root: Path) -> None:
    import cv2

    from sclle.enhancement.api import build_engine
    from sclle.evaluate.suite import scorecard_protocols

    niqe, piqe = create("niqe"), create("piqe")
    engine = build_engine("sclle-default")

    def u8(t: torch.Tensor) -> np.ndarray:
        return (t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

    def back(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]

    steps = {
        "none": lambda y: y,
        "non-local means h=3": lambda y: back(cv2.fastNlMeansDenoisingColored(u8(y), None, 3, 3, 7, 21)),
        "non-local means h=6": lambda y: back(cv2.fastNlMeansDenoisingColored(u8(y), None, 6, 6, 7, 21)),
        "bilateral d=5": lambda y: back(cv2.bilateralFilter(u8(y), 5, 20, 5)),
    }
    protocols, _ = scorecard_protocols(data_root, Path("reports/try_finishing"), 64)
    for p in protocols:
        if p.name not in ("DICM", "LIME"):
            continue
        got: dict[str, list] = {k: [] for k in steps}
        for item in p.dataset.items(p.limit):
            x, _ = p.dataset.load(item)
            with torch.no_grad():
                y = engine(x if x.dim() == 4 else x[None]).clamp(0, 1)
            for k, f in steps.items():
                z = f(y)
                got[k].append((float(niqe(z)), float(piqe(z))))
        for k, v in got.items():
            a = np.array(v).mean(0)
            print(f"{p.name} {k:22s} NIQE {a[0]:.3f}  PIQE {a[1]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("highlight", "denoise"))
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    (highlight if a.what == "highlight" else denoise)(a.data_root)


if __name__ == "__main__":
    main()

"""Fit the adaptive-exposure numbers of a curve model on training data only.

For each training pair it estimates the model's curve maps once, scores the output at curve strengths
0 .. 2.5 against the reference (PSNR and SSIM, at half resolution for speed), and then grid-searches
``s = clamp(a + b * log_mean + c * log_highlights, 0, 1.5)`` (:mod:`sclle.models.exposure`) for the best
weighted mean of PSNR + 20 SSIM (the not-darkened kind weighted ``--normal-weight``).

Training pairs (never the scorecard's images):
* SICE Part1 scenes *not* in the held-out list: the three darkest frames against the scene's fusion;
* CamVid *train*: darkened ``e * x**g`` (g in [1, 3], e in [0.35, 1]) against the original;
* CamVid *train* not darkened, against itself (an enhancer should leave it alone).

    python scripts/fit_exposure.py --model sclle-default --data-root ../shared/data --out reports/exposure_fit.json

Prints the fitted numbers (paste them into the model's ``arch_kwargs``) and the per-kind scores at
strength 1 and with the fit.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sclle.core.files import atomic_write, natural_sorted
from sclle.data.pool_builder import training_scenes
from sclle.imageio import read_image, to_tensor
from sclle.metrics import create
from sclle.models.base import apply_le_curves, scale_curves
from sclle.models.exposure import log_highlight_luminance, log_mean_luminance
from sclle.models.registry import load_weights

STRENGTHS = np.round(np.arange(0.0, 2.51, 0.1), 2)
KINDS = ("sice", "camvid_dark", "camvid_normal")
PSNR_CAP = 40.0  # an untouched image scores inf: cap it so one kind cannot dominate the mean


def _half(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255.0


def sweep(net, pairs, progress: bool = True) -> list[dict]:
    """Per pair: its log-mean luminance and PSNR/SSIM at every strength in ``STRENGTHS``."""
    from tqdm.auto import tqdm

    psnr, ssim = create("psnr"), create("ssim")
    rows = []
    for kind, name, x, ref in tqdm(pairs, desc="sweep", unit="pair", disable=not progress):
        with torch.no_grad():
            curves, xs, rs = _half(net(x)), _half(x), _half(ref)
            scores = [
                (float(psnr(y, rs)), float(ssim(y, rs)))
                for y in (apply_le_curves(xs, scale_curves(curves, float(s))) for s in STRENGTHS)
            ]
        rows.append({"kind": kind, "name": name, "logmean": float(log_mean_luminance(x)),
                     "loghigh": float(log_highlight_luminance(x)),
                     "psnr": [p for p, _ in scores], "ssim": [q for _, q in scores]})  # fmt: skip
    return rows


def training_pairs(data_root: Path, scenes: int, dark: int, normal: int, seed: int):
    """(kind, name, input, reference) from the training splits only."""
    for scene, frames, fused in training_scenes(data_root / "sice_part1", scenes, seed):
        for k, frame in enumerate(frames[:3]):
            yield "sice", f"{scene.id}_{k}", _tensor(frame), _tensor(fused)
    files = natural_sorted(
        p for p in (data_root / "camvid" / "train").iterdir() if p.suffix in (".png", ".jpg")
    )
    rng = random.Random(seed + 1)
    for f in rng.sample(files, dark):
        ref = to_tensor(read_image(f).rgb)
        g, e = rng.uniform(1.0, 3.0), rng.uniform(0.35, 1.0)
        yield "camvid_dark", f.stem, (e * ref**g).clamp(0, 1), ref
    for f in rng.sample(files, normal):
        ref = to_tensor(read_image(f).rgb)
        yield "camvid_normal", f.stem, ref, ref


def fit(rows: list[dict], normal_weight: float) -> dict:
    """Grid search of (a, b, c) for the best weighted mean of PSNR + 20 SSIM over the three kinds."""
    kind = np.array([r["kind"] for r in rows])
    lm = np.array([r["logmean"] for r in rows])
    lh = np.array([r["loghigh"] for r in rows])
    P = np.minimum(np.array([r["psnr"] for r in rows]), PSNR_CAP)
    Q = np.array([r["ssim"] for r in rows])
    weights = {"sice": 1.0, "camvid_dark": 1.0, "camvid_normal": normal_weight}

    def at(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.clip(s, STRENGTHS[0], STRENGTHS[-1])
        j = np.clip(np.searchsorted(STRENGTHS, s) - 1, 0, len(STRENGTHS) - 2)
        w = (s - STRENGTHS[j]) / (STRENGTHS[j + 1] - STRENGTHS[j])
        r = np.arange(len(s))
        return P[r, j] * (1 - w) + P[r, j + 1] * w, Q[r, j] * (1 - w) + Q[r, j + 1] * w

    def table(s: np.ndarray) -> dict:
        p, q = at(s)
        return {k: {"psnr": round(float(p[kind == k].mean()), 3), "ssim": round(float(q[kind == k].mean()), 4),
                    "n": int((kind == k).sum())} for k in KINDS if (kind == k).any()}  # fmt: skip

    def objective(s: np.ndarray) -> float:
        p, q = at(s)
        return sum(
            weights[k] * (p[kind == k].mean() + 20 * q[kind == k].mean()) for k in KINDS if (kind == k).any()
        )

    hi = 1.5  # curve maps are clipped to [-1, 1] anyway; above 1.5 only the darkest frames gain
    grid = np.round(np.arange(-2.0, 1.01, 0.1), 2), np.round(np.arange(-1.6, 0.01, 0.1), 2)
    best = max(
        ((objective(np.clip(a + b * lm + c * lh, 0.0, hi)), a, b, c)
         for a in grid[0] for b in grid[1] for c in np.round(np.arange(-2.0, 0.01, 0.1), 2)),
        key=lambda t: t[0],
    )  # fmt: skip
    _, a, b, c = best
    return {
        "exposure": {"a": float(a), "b": float(b), "c": float(c), "lo": 0.0, "hi": hi},
        "normal_weight": normal_weight,
        "at_strength_1": table(np.ones(len(rows))),
        "with_fit": table(np.clip(a + b * lm + c * lh, 0.0, hi)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sclle-default")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", type=int, default=60, help="SICE training scenes (3 frames each)")
    ap.add_argument("--camvid-dark", type=int, default=120)
    ap.add_argument("--camvid-normal", type=int, default=40)
    ap.add_argument("--normal-weight", type=float, default=0.25, help="weight of the not-darkened kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("reports/exposure_fit.json"))
    args = ap.parse_args()
    net, _ = load_weights(args.model)
    net.exposure = None  # fit on the plain network's curves
    pairs = training_pairs(args.data_root, args.scenes, args.camvid_dark, args.camvid_normal, args.seed)
    rows = sweep(net.eval(), pairs)
    result = {"model": args.model, **fit(rows, args.normal_weight), "pairs": len(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, json.dumps({**result, "rows": rows}))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

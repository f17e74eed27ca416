"""Fit the adaptive-exposure numbers of a curve model on training data only.

For each training pair it estimates the model's curve maps once, scores the output at curve strengths
0 .. ``--max-strength`` against the reference (PSNR and SSIM, at half resolution for speed), and then
grid-searches ``s = clamp(a + b * log_mean + c * log_highlights [+ d * log_spread], 0, --hi)`` (:mod:`sclle.models.exposure`,
:mod:`sclle.train.exposure_fit`) for the best weighted mean of PSNR + 20 SSIM (the not-darkened kind
weighted ``--normal-weight``), minus ``--niqe-weight`` times the outputs' NIQE (recorded in every sweep). ``--rows`` refits a saved sweep with another cap or grid in seconds.

Training pairs (never the scorecard's images):
* SICE Part1 scenes *not* in the held-out list: the three darkest frames against the scene's fusion;
* CamVid *train*: darkened ``e * x**g`` (g in [1, 3], e in [0.35, 1]) against the original;
* CamVid *train* not darkened, against itself (an enhancer should leave it alone).

    python scripts/fit_exposure.py --model sclle-default --data-root ../shared/data --out reports/exposure_fit.json
    python scripts/fit_exposure.py --rows reports/exposure_fit.json --hi 2.5 --a-min -6 --b-min -3 --c-min -5 \
        --out reports/exposure_fit_hi2.5.json
    python scripts/fit_exposure.py --rows reports/exposure_fit.json --hi 1.5 --a-min -6 --b-min -3 --c-min -5 \
        --d-max 3 --out reports/exposure_fit_spread.json   # + the log-luminance spread (older sweeps: filled in)

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
from sclle.models.chroma import keep_chroma
from sclle.models.exposure import colour_stats, luminance_stats
from sclle.models.registry import load_weights
from sclle.train.exposure_fit import TERMS, cross_validate, fit, fit_terms, grid_objective, strengths_to


def _half(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255.0


#: NIQE is scale-dependent: it is taken on the output at full size up to this long side (SICE's 512-px
#: frames), else at half size (CamVid's 960 px -> 480), i.e. near the size of the DICM/LIME photos it judges.
NIQE_MAX_SIDE = 640


def stats(x: torch.Tensor) -> dict[str, float]:
    """The input statistics the exposure rule reads (:mod:`sclle.models.exposure`), by their row names."""
    mean, high, spread = (float(v) for v in luminance_stats(x))
    chroma, saturation = (float(v) for v in colour_stats(x))
    return {"logmean": mean, "loghigh": high, "logstd": spread, "chroma": chroma, "saturation": saturation}


def add_stats(rows: list[dict], pairs) -> None:
    """Fill the statistics a sweep recorded before they existed (``logstd``, ``chroma``, ``saturation``)
    into its rows, from the same pairs (no network).

    The pairs are regenerated from ``--scenes/--camvid-dark/--camvid-normal/--seed``; each one's name and
    log-mean must match its row, so a sweep made with other settings is refused rather than mislabelled.
    """
    pairs = list(pairs)
    if len(pairs) != len(rows):
        raise SystemExit(
            f"the saved sweep has {len(rows)} pairs, these settings make {len(pairs)}: pass the "
            "--scenes/--camvid-dark/--camvid-normal/--seed it was made with"
        )
    for row, (_, name, x, _) in zip(rows, pairs, strict=True):
        s = stats(x)
        if row["name"] != name or abs(row["logmean"] - s["logmean"]) > 1e-5:
            raise SystemExit(
                f"the saved sweep's pair {row['name']} is not {name} (or not the same image): pass the "
                "--scenes/--camvid-dark/--camvid-normal/--seed it was made with"
            )
        for key in ("logstd", "chroma", "saturation"):
            row[key] = s[key]


def sweep(net, pairs, strengths: np.ndarray, progress: bool = True, with_niqe: bool = True) -> list[dict]:
    """Per pair: its log-mean luminance and PSNR/SSIM (and NIQE) at every strength in ``strengths``."""
    from tqdm.auto import tqdm

    psnr, ssim, niqe = create("psnr"), create("ssim"), create("niqe")
    rows = []
    for kind, name, x, ref in tqdm(pairs, desc="sweep", unit="pair", disable=not progress):
        with torch.no_grad():
            full = net(x)
            curves, xs, rs = _half(full), _half(x), _half(ref)
            scores = [
                (float(psnr(y, rs)), float(ssim(y, rs)))
                for y in (apply_le_curves(xs, scale_curves(curves, float(s))) for s in strengths)
            ]
            row = {"kind": kind, "name": name, **stats(x),
                   "psnr": [p for p, _ in scores], "ssim": [q for _, q in scores]}  # fmt: skip
            if with_niqe:
                xn, cn = (x, full) if max(x.shape[-2:]) <= NIQE_MAX_SIDE else (xs, curves)
                row["niqe"] = [float(niqe(apply_le_curves(xn, scale_curves(cn, float(s))).clamp(0, 1)))
                               for s in strengths]  # fmt: skip
        rows.append(row)
    return rows


def chroma_sweep(net, pairs, ks: list[float], progress: bool = True) -> list[dict]:
    """Per pair: PSNR/SSIM (half resolution) at each chroma-keeping weight in ``ks``, at the model's own
    per-image strength (its exposure rule; 1 without one)."""
    from tqdm.auto import tqdm

    psnr, ssim = create("psnr"), create("ssim")
    rows = []
    for kind, name, x, ref in tqdm(pairs, desc="chroma", unit="pair", disable=not progress):
        with torch.no_grad():
            s = net.image_strength(x)
            s = 1.0 if s is None else s.view(-1, 1, 1, 1)
            xs, rs = _half(x), _half(ref)
            y = apply_le_curves(xs, scale_curves(_half(net(x)), s))
            outs = [keep_chroma(xs, y, k) for k in ks]
        rows.append({"kind": kind, "name": name, "psnr": [float(psnr(o, rs)) for o in outs],
                     "ssim": [float(ssim(o, rs)) for o in outs]})  # fmt: skip
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sclle-default")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", type=int, default=60, help="SICE training scenes (3 frames each)")
    ap.add_argument("--camvid-dark", type=int, default=120)
    ap.add_argument("--camvid-normal", type=int, default=40)
    ap.add_argument("--normal-weight", type=float, default=0.25, help="weight of the not-darkened kind")
    ap.add_argument(
        "--sice-weight",
        type=float,
        default=1.0,
        help="weight of the real pairs (SICE frames against their fusion); darkened CamVid weighs 1",
    )
    ap.add_argument(
        "--niqe-weight",
        type=float,
        default=0.0,
        help="subtract this times the outputs' NIQE from each kind's PSNR + 20 SSIM",
    )
    ap.add_argument("--no-niqe", action="store_true", help="do not record NIQE in the sweep (~20%% faster)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--hi",
        type=float,
        default=1.5,
        help="largest strength (ExposureControl allows up to MAX_STRENGTH = 4)",
    )
    ap.add_argument("--a-min", type=float, default=-2.0, help="lower end of the grid of a")
    ap.add_argument("--b-min", type=float, default=-1.6, help="lower end of the grid of b")
    ap.add_argument("--c-min", type=float, default=-2.0, help="lower end of the grid of c")
    ap.add_argument(
        "--d-max",
        type=float,
        default=0.0,
        help="also fit the weight d in [0, this] of the log-luminance spread (0: the rule without it)",
    )
    ap.add_argument(
        "--terms",
        help="comma-separated weights to fit by a bounded search instead of the grid, e.g. b,c,d,e,f "
        f"({', '.join(f'{k}: {v[0]}' for k, v in TERMS.items())}); a is always fitted",
    )
    ap.add_argument(
        "--cv",
        type=int,
        default=0,
        help="with --terms: also print the K-fold cross-validated objective of that set of terms (0: none)",
    )
    ap.add_argument("--max-strength", type=float, default=2.5, help="sweep strengths 0 .. this")
    ap.add_argument("--rows", type=Path, help="refit the sweep of an earlier --out file (no network run)")
    ap.add_argument(
        "--chroma",
        help="instead of an exposure fit: score these chroma-keeping weights (comma-separated, in [0, 1]) at the "
        "model's own strengths and print the best by the same objective (sclle.models.chroma)",
    )
    ap.add_argument("--out", type=Path, default=Path("reports/exposure_fit.json"))
    args = ap.parse_args()
    if args.niqe_weight > 0 and args.no_niqe and args.rows is None:
        ap.error("--niqe-weight needs the NIQE scores that --no-niqe leaves out")
    if args.chroma:
        ks = [float(v) for v in args.chroma.split(",")]
        net, _ = load_weights(args.model)
        if getattr(net, "chroma", None) is not None:
            net.chroma = None  # score the curves' own output, then each weight on it
        pairs = training_pairs(args.data_root, args.scenes, args.camvid_dark, args.camvid_normal, args.seed)
        rows = chroma_sweep(net.eval(), pairs, ks)
        result = {"model": args.model, "chroma": ks,
                  **grid_objective(rows, ks, normal_weight=args.normal_weight, sice_weight=args.sice_weight)}  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, json.dumps({**result, "rows": rows}))
        print(json.dumps(result, indent=1))
        return
    if args.rows is not None:
        earlier = json.loads(args.rows.read_text())
        rows, strengths = earlier["rows"], np.asarray(earlier.get("strengths", strengths_to(2.5)))
        args.model = earlier.get("model", args.model)
        for k, v in earlier.get("pairs_made_with", {}).items():  # the sweep's own pair settings win
            setattr(args, k, v)
        needed = {"logstd"} if args.d_max > 0 else set()
        needed |= {TERMS[k][0] for k in (args.terms.split(",") if args.terms else []) if k in TERMS}
        if any(key not in r for r in rows for key in needed):
            add_stats(
                rows,
                training_pairs(args.data_root, args.scenes, args.camvid_dark, args.camvid_normal, args.seed),
            )
    else:
        net, _ = load_weights(args.model)
        net.exposure = None  # fit on the plain network's curves
        pairs = training_pairs(args.data_root, args.scenes, args.camvid_dark, args.camvid_normal, args.seed)
        strengths = strengths_to(args.max_strength)
        rows = sweep(net.eval(), pairs, strengths, with_niqe=not args.no_niqe)
    weights = {
        "normal_weight": args.normal_weight,
        "sice_weight": args.sice_weight,
        "hi": args.hi,
        "niqe_weight": args.niqe_weight,
    }
    if args.terms:
        terms = [k.strip() for k in args.terms.split(",")]
        fitted = fit_terms(rows, strengths, terms, **weights)
        if args.cv:
            fitted["cross_validation"] = cross_validate(rows, strengths, terms, folds=args.cv, **weights)
    else:
        grid = {"a_min": args.a_min, "b_min": args.b_min, "c_min": args.c_min, "d_max": args.d_max}
        fitted = fit(rows, strengths, **weights, **grid)
    pairs_made_with = {k: getattr(args, k) for k in ("scenes", "camvid_dark", "camvid_normal", "seed")}
    result = {"model": args.model, **fitted, "pairs": len(rows), "pairs_made_with": pairs_made_with}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, json.dumps({**result, "strengths": strengths.tolist(), "rows": rows}))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

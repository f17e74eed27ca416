"""Colour cast against a reference: mean CIELAB chroma of the output minus the reference's, on CamVid pairs.

PSNR and SSIM (grey) barely see a tint that covers a whole picture; this measures it. On the scorecard's
CamVid protocols (the same 20 test images, darkened moderately ``0.8·x^1.5`` and strongly ``0.5·x^2.5``),
enhanced in exact mode, it reports the mean over images of ``(a*, b*)`` of the output minus that of the
original (negative a*: green, positive b*: yellow) and the mean length of that shift (the scorecard's
``cast`` column, :mod:`sclle.metrics.cast`, is that length; this script adds its direction).

    python scripts/colour_cast.py -m scl-lle-official,zero-dce-official,sclle-default \
        -m "runs/cpu-scratch/checkpoints/step_0007840.pt@-2.0,-0.9,-1.9,0,1.5"

A model is a registry name or ``WEIGHTS@a,b,c,lo,hi`` (a weights file with an adaptive exposure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sclle.enhancement.engine import Engine, EngineConfig
from sclle.evaluate.datasets import DatasetSpec
from sclle.evaluate.suite import MODERATE, STRONG
from sclle.metrics.cast import mean_chroma
from sclle.models.registry import build_model, load_weights, read_state_dict

LEVELS = {"moderate": MODERATE, "strong": STRONG}  # the scorecard's protocols, same images and darkening


def model(spec: str):
    if "@" not in spec:
        return load_weights(spec)[0]
    path, numbers = spec.rsplit("@", 1)
    a, b, c, lo, hi = (float(v) for v in numbers.split(","))
    return build_model(read_state_dict(path), exposure={"a": a, "b": b, "c": c, "lo": lo, "hi": hi})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "-m", "--models", action="append", required=True, help="names, comma-separated; repeatable"
    )
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--limit", type=int, default=20)
    a = ap.parse_args()
    # a weights@numbers spec holds commas itself: one per -m; names may be comma-separated
    specs = [s for g in a.models for s in ([g] if "@" in g else g.split(",")) if s]
    engines = {s: Engine(model(s), EngineConfig()) for s in specs}
    print("| method | level | Δa*, Δb* | mean |Δab| |")
    print("|---|---|---|---:|")
    for level, protocol in LEVELS.items():
        spec = DatasetSpec(level, a.data_root / "camvid" / "test", "synthetic", protocol)
        shifts: dict[str, list[np.ndarray]] = {s: [] for s in specs}
        for item in spec.items(a.limit):
            x, ref = spec.load(item)
            ab = mean_chroma(ref)[0].numpy()
            for s, eng in engines.items():
                shifts[s].append(mean_chroma(eng(x))[0].numpy() - ab)
        for s, v in shifts.items():
            d = np.array(v)
            da, db = d.mean(0)
            print(f"| {s} | {level} | {da:+.2f}, {db:+.2f} | {np.linalg.norm(d, axis=1).mean():.2f} |")


if __name__ == "__main__":
    main()

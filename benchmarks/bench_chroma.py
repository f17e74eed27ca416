"""What the chroma-keeping step costs in fast and exact mode (session 12).

One run, one image size, the same thread count for every row, so the ratios are what to read (this machine is
shared). Rows: the in-place step alone on a 1080p image, and the bundled default's network and exposure rule
end to end in fast mode (its default scale) and exact mode, with the bundled chroma weight and without it.

    python benchmarks/bench_chroma.py --threads 1 --repeats 5 --out benchmarks/results/chroma.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from timing import best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", default="1920x1080", help="WxH")
    ap.add_argument("--k", type=float, default=None, help="chroma weight (default: the bundled default's)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle.enhancement.engine import Engine, EngineConfig
    from sclle.models.chroma import KeepChroma, keep_chroma_
    from sclle.models.registry import load_weights

    w, h = (int(v) for v in a.size.split("x"))
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 0.3
    net, entry = load_weights(None)
    k = a.k if a.k is not None else (net.chroma.k if net.chroma is not None else 0.25)
    net.chroma = KeepChroma(k)
    plain, _ = load_weights(None)
    plain.chroma = None
    scale = entry.fast_scale if entry is not None else 0.25
    y = torch.rand_like(x)
    rows = {}
    with torch.inference_mode():
        rows["chroma step alone"] = best(lambda: keep_chroma_(x, y.clone(), k), a.repeats)
        rows["copy of the image (the step's clone above)"] = best(lambda: y.clone(), a.repeats)
        for mode, cfg in (("fast", EngineConfig(fast_scale=scale)), ("exact", EngineConfig())):
            reps = a.repeats if mode == "fast" else max(1, a.repeats // 2)
            rows[f"{mode}, with chroma k={k:g}"] = best(lambda cfg=cfg: Engine(net, cfg)(x), reps)
            rows[f"{mode}, without"] = best(lambda cfg=cfg: Engine(plain, cfg)(x), reps)
    out = {"size": a.size, "threads": a.threads, "k": k, "seconds": rows}
    out["with / without"] = {
        m: rows[f"{m}, with chroma k={k:g}"] / rows[f"{m}, without"] for m in ("fast", "exact")
    }
    print(json.dumps(out, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""What the chroma-keeping step costs in fast and exact mode (session 12).

One run, one image size, the same thread count for every row, so the ratios are what to read (this machine is
shared). Rows: the in-place step alone on a 1080p image, and the bundled default's network and exposure rule
end to end in fast mode (its default scale) and exact mode, with the bundled chroma weight and without it.

    python benchmarks/bench_chroma.py --threads 1 --repeats 5 --out benchmarks/results/chroma.json
"""

from __future__ import annotations

import torch
from timing import ab_modes, best, dark_image, parser, report


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--k", type=float, default=None, help="chroma weight (default: the bundled default's)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle.models.chroma import KeepChroma, keep_chroma_
    from sclle.models.registry import load_weights

    x = dark_image(a.size)
    net, entry = load_weights(None)
    k = a.k if a.k is not None else (net.chroma.k if net.chroma is not None else 0.25)
    net.chroma = KeepChroma(k)
    plain, _ = load_weights(None)
    plain.chroma = None
    scale = entry.fast_scale if entry is not None else 0.25
    y = torch.rand_like(x)
    with torch.inference_mode():
        rows = {
            "chroma step alone": best(lambda: keep_chroma_(x, y.clone(), k), a.repeats),
            "copy of the image (the step's clone above)": best(lambda: y.clone(), a.repeats),
        }
        rows |= ab_modes({f"with chroma k={k:g}": net, "without": plain}, x, scale, a.repeats)
    out = {"size": a.size, "threads": a.threads, "k": k, "seconds": rows}
    out["with / without"] = {
        m: rows[f"{m}, with chroma k={k:g}"] / rows[f"{m}, without"] for m in ("fast", "exact")
    }
    report(out, a.out)


if __name__ == "__main__":
    main()

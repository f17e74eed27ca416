"""What the exposure rule's statistics cost, and what the colour terms add to fast and exact mode (session 11).

One run, one image size, the same thread count for every row, so the ratios are what to read (this machine is
shared). Rows: the luminance pass (log-mean, highlights, spread), the colour pass (chroma spread, saturation),
and the bundled default end to end in fast mode (its default scale) and exact mode, once with its rule and once
with the luminance-only rule of the session-8 default (same network).

    python benchmarks/bench_exposure_stats.py --threads 1 --repeats 5 --out benchmarks/results/exposure_stats.json
"""

from __future__ import annotations

import torch
from timing import ab_modes, best, dark_image, parser, report

#: The session-8 default's luminance-only rule (docs/deviations.md), for the comparison row.
LUMINANCE_RULE = {"a": -2.3, "b": -1.0, "c": -2.1, "lo": 0.0, "hi": 1.5}


def main() -> None:
    a = parser(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(a.threads)
    from sclle.models.exposure import ExposureControl, colour_stats, luminance_stats
    from sclle.models.registry import load_weights

    x = dark_image(a.size)
    net, entry = load_weights(None)
    colour_rule = net.exposure
    old, _ = load_weights(None)
    old.exposure = ExposureControl(**LUMINANCE_RULE)
    scale = entry.fast_scale if entry is not None else 0.25
    with torch.inference_mode():
        rows = {
            "luminance statistics": best(lambda: luminance_stats(x), a.repeats),
            "colour statistics": best(lambda: colour_stats(x), a.repeats),
        }
        rows |= ab_modes({"colour rule": net, "luminance rule": old}, x, scale, a.repeats)
    out = {"size": a.size, "threads": a.threads, "rule": colour_rule.config(), "seconds": rows}
    out["colour rule / luminance rule"] = {
        m: rows[f"{m}, colour rule"] / rows[f"{m}, luminance rule"] for m in ("fast", "exact")
    }
    report(out, a.out)


if __name__ == "__main__":
    main()

"""Fast mode against exact mode at 1920x1080, both in the same precision, and where fast mode's time goes.

For each precision (fp32, bf16) the bundled model runs in exact mode and in fast mode at its default
scale (engine defaults otherwise), and the ratio of their times is reported. Then fast mode is taken
apart: the downscale, the network on the small copy (an exact engine on that copy), the
full-resolution upsample-and-apply (``upsample_apply_curves``), and for scale a ``clone()`` of the
full-resolution image (a memcpy of the bytes the apply step must at least read and write).

    python benchmarks/bench_fast_speed.py --threads 2 --repeats 3 --out benchmarks/results/fast_speed.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from timing import best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle.enhancement.engine import Engine, EngineConfig, upsample_apply_curves
    from sclle.models.registry import load_weights

    net, entry = load_weights(None)
    scale = entry.fast_scale if entry is not None else 0.25
    x = torch.rand(1, 3, 1080, 1920) * 0.3
    rows = []
    with torch.inference_mode():
        small = net.downscale(x, scale)
        curves = net(small)
        # Precision-independent parts, measured once.
        down_s = best(lambda: net.downscale(x, scale), a.repeats)
        apply_s = best(
            lambda: upsample_apply_curves(x, curves, align_corners=net.upsample_align_corners), a.repeats
        )
        copy_s = best(lambda: x.clone(), a.repeats)
        # The same two at 1 thread: on a loaded machine each of the apply step's ~2,700 small ops pays
        # an OpenMP barrier waiting for a descheduled thread; one thread shows the op cost without it.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        apply1_s = best(
            lambda: upsample_apply_curves(x, curves, align_corners=net.upsample_align_corners), a.repeats
        )
        copy1_s = best(lambda: x.clone(), a.repeats)
        torch.set_num_threads(threads)
        nhwc_s = best(lambda: x.contiguous(memory_format=torch.channels_last), a.repeats)
        for p in a.precisions.split(","):
            exact = Engine(net, EngineConfig(precision=p))
            fast = Engine(net, EngineConfig(precision=p, fast_scale=scale))
            exact_s = best(lambda e=exact: e(x), max(1, a.repeats - 1))
            fast_s = best(lambda e=fast: e(x), a.repeats)
            small_net_s = best(lambda e=exact: e(small), a.repeats)
            rows.append(
                {
                    "precision": p,
                    "exact_s": exact_s,
                    "fast_s": fast_s,
                    "speedup": exact_s / fast_s,
                    "network_on_small_s": small_net_s,
                    "network_on_small_per_pixel_vs_exact": (small_net_s / small[0, 0].numel())
                    / (exact_s / x[0, 0].numel()),
                }
            )
    mb = x.numel() * 4 / 1e6
    res = {
        "threads": a.threads,
        "scale": scale,
        "size": "1920x1080",
        "downscale_s": down_s,
        "upsample_apply_s": apply_s,
        "clone_s": copy_s,
        "to_channels_last_s": nhwc_s,
        "apply_vs_clone": apply_s / copy_s,
        "upsample_apply_1thread_s": apply1_s,
        "clone_1thread_s": copy1_s,
        "clone_gb_per_s": 2 * mb / 1e3 / copy_s,
        "rows": rows,
    }
    print(f"fast scale {scale} at 1920x1080 ({a.threads} threads)")
    for r in rows:
        print(
            f"{r['precision']}: exact {r['exact_s']:.3f} s, fast {r['fast_s']:.3f} s -> {r['speedup']:.1f}x; "
            f"network on the small copy {r['network_on_small_s']:.3f} s "
            f"({r['network_on_small_per_pixel_vs_exact']:.2f}x exact's time per pixel)"
        )
    print(
        f"full resolution: downscale {down_s * 1e3:.1f} ms, upsample+apply {apply_s * 1e3:.1f} ms, "
        f"clone of the image {copy_s * 1e3:.1f} ms ({res['clone_gb_per_s']:.1f} GB/s read+write; "
        f"apply = {res['apply_vs_clone']:.1f}x clone), NCHW->NHWC copy {nhwc_s * 1e3:.1f} ms"
    )
    print(
        f"at 1 thread: upsample+apply {apply1_s * 1e3:.1f} ms, clone {copy1_s * 1e3:.1f} ms "
        f"(apply = {apply1_s / copy1_s:.1f}x clone)"
    )
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""Same-size batching on the CPU: N images in one call against N calls of one (issue 15, item 4).

Uses a model without per-image strength (``sclle-fixed-strength``: the engine splits batches of a model
with adaptive exposure into single images anyway), at a size below the auto-tiling threshold.

    python benchmarks/bench_batching.py --threads 1 --size 360x480 --batch 8
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", default="360x480", help="HxW")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="sclle-fixed-strength")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle.enhancement.api import build_engine

    h, w = (int(v) for v in a.size.split("x"))
    x = torch.rand(a.batch, 3, h, w) * 0.3
    for fast in (None, "auto"):
        eng = build_engine(a.model, fast_scale=fast, device="cpu")
        one = lambda eng=eng: [eng(x[i : i + 1]) for i in range(a.batch)]  # noqa: E731
        many = lambda eng=eng: eng(x)  # noqa: E731
        res = {}
        for name, fn in (("singles", one), ("batch", many), ("singles", one), ("batch", many)):
            fn()
            t0 = time.perf_counter()
            for _ in range(a.repeats):
                fn()
            res.setdefault(name, []).append((time.perf_counter() - t0) / a.repeats)
        s, b = min(res["singles"]), min(res["batch"])
        mode = "exact" if fast is None else f"fast {eng.scale}"
        print(
            f"{mode:>10}: {a.batch} singles {s:.3f} s, one batch of {a.batch} {b:.3f} s -> batch {s / b:.2f}x"
        )


if __name__ == "__main__":
    main()

"""The one timing rule of the benchmarks: best of ``repeats`` wall-clock runs, after one warm-up run.

The minimum, not the mean: on a shared machine load only ever adds time. The warm-up pays one-off costs
(oneDNN primitive creation, allocator growth, codec tables) outside the measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn``."""
    if warmup:
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def parser(description: str | None = None):
    """The options every A/B benchmark shares: threads, repeats, image size, output file."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", default="1920x1080", help="WxH")
    ap.add_argument("--out", default=None)
    return ap


def dark_image(size: str):
    """A seeded random dark image of ``size`` (``WxH``), (1, 3, H, W) in [0, 0.3]."""
    import torch

    w, h = (int(v) for v in size.split("x"))
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 0.3


def ab_modes(nets: dict, x, scale: float, repeats: int) -> dict[str, float]:
    """Seconds of each labelled network end to end in fast mode (at ``scale``) and exact mode, rows in one run
    (exact mode with half the repeats: it is ~15x slower). Keys: ``"<mode>, <label>"``."""
    from sclle.enhancement.engine import Engine, EngineConfig

    rows = {}
    for mode, cfg in (("fast", EngineConfig(fast_scale=scale)), ("exact", EngineConfig())):
        reps = repeats if mode == "fast" else max(1, repeats // 2)
        for label, net in nets.items():
            rows[f"{mode}, {label}"] = best(lambda cfg=cfg, net=net: Engine(net, cfg)(x), reps)
    return rows


def report(out: dict, path: str | None) -> None:
    """Print ``out`` as JSON and write it to ``path`` when given."""
    import json
    from pathlib import Path

    print(json.dumps(out, indent=1))
    if path:
        Path(path).write_text(json.dumps(out, indent=1) + "\n")

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

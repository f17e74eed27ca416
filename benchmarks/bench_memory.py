"""Peak memory of enhancing one large image with the default settings (issue 15, item 1).

Each (size, mode) runs in a fresh child process that builds the engine as ``sclle enhance`` does
(bundled model, ``--precision auto``, automatic tiling) and enhances one synthetic dark image; the
parent reads that child's own peak RSS from ``os.wait4`` (``getrusage(RUSAGE_CHILDREN)`` would give the
maximum over every child so far). The peak includes the Python interpreter, torch and the image
tensors themselves: input and output are 3 x 4 bytes per pixel each (576 MB apiece at 8000x6000).

    python benchmarks/bench_memory.py --threads 2 --out benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"3840x2160": (2160, 3840), "8000x6000": (6000, 8000)}


def child(size: str, mode: str, threads: int, tile: int | None) -> None:
    import torch

    torch.set_num_threads(threads)
    from sclle.enhancement.api import build_engine

    h, w = SIZES[size]
    eng = build_engine(
        None, fast_scale="auto" if mode == "fast" else None, precision="auto", device="cpu", tile=tile
    )
    x = torch.rand(1, 3, h, w).mul_(0.3)
    t0 = time.perf_counter()
    y = eng(x)
    dt = time.perf_counter() - t0
    print(
        json.dumps({"seconds": dt, "precision": eng.precision, "scale": eng.scale, "mean": float(y.mean())})
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--modes", default="exact,fast")
    ap.add_argument(
        "--tile", type=int, default=None, help="tile size (default: the engine's automatic tiling)"
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.threads, a.tile)
        return
    rows = []
    for size in a.sizes.split(","):
        for mode in a.modes.split(","):
            cmd = [sys.executable, __file__, "--threads", str(a.threads), "--child", size, mode]
            cmd += ["--tile", str(a.tile)] if a.tile else []
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(p.pid, 0)
            out = p.stdout.read()
            p.stdout.close()
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode != 0:
                raise SystemExit(f"{size} {mode}: child failed with exit status {p.returncode}")
            r = json.loads(out.strip().splitlines()[-1])
            r.update(size=size, mode=mode, peak_rss_mb=usage.ru_maxrss / 1024)  # ru_maxrss is in KiB
            rows.append(r)
            print(
                f"{size:>10} {mode:>5} ({r['precision']}, scale {r['scale']}): {r['seconds']:7.2f} s, "
                f"peak RSS {r['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"threads": a.threads, "tile": a.tile, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

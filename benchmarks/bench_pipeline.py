"""End-to-end images/s of ``sclle enhance`` against pure compute, exact and fast (issue 15, item 4).

One engine per mode, built as the CLI builds it (bundled model, ``--precision auto``, auto-tiling).
*compute* runs it over the already-decoded tensors of every image; *end to end* is
:func:`sclle.enhancement.batch.enhance_files` (what ``sclle enhance DICM LIME -o OUT`` runs after start-up:
decode in reader threads, compute, encode in the input's format in writer threads, atomic writes) with
the same engine, so the ratio is the pipeline's overhead alone. Process start-up (importing torch,
loading weights, the precision calibration) is excluded from both and printed separately.

    python benchmarks/bench_pipeline.py --data ../shared/data/DICM ../shared/data/LIME --threads 2 \
        --out benchmarks/results/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="exact,fast")
    ap.add_argument("--workers", type=int, default=2, help="reader and writer threads (the CLI's default)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle import imageio
    from sclle.enhancement.api import build_engine
    from sclle.enhancement.batch import enhance_files

    items, errors = imageio.find_images(a.data)
    if errors:
        raise SystemExit("\n".join(errors))
    t0 = time.perf_counter()
    decoded = [imageio.to_tensor(imageio.read_image(p).rgb) for p, _ in items]
    decode_s = time.perf_counter() - t0
    pixels = sum(x.shape[-1] * x.shape[-2] for x in decoded)
    print(f"{len(decoded)} images, {pixels / 1e6:.1f} Mpx, decoded in {decode_s:.1f} s (not timed below)")
    rows = []
    for mode in a.modes.split(","):
        t0 = time.perf_counter()
        eng = build_engine(
            None, fast_scale="auto" if mode == "fast" else None, precision="auto", device="cpu"
        )
        setup_s = time.perf_counter() - t0
        eng(decoded[0][..., :64, :64])  # warm-up
        t0 = time.perf_counter()
        for x in decoded:
            eng(x)
        compute_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = enhance_files(a.data, Path(d) / "out", eng, progress=False, workers=a.workers)
            e2e_s = time.perf_counter() - t0
        if res.failed or res.enhanced != len(decoded):
            raise SystemExit(f"{mode}: {res.enhanced} enhanced, failed: {res.failed[:3]}")
        r = {
            "mode": mode,
            "precision": eng.precision,
            "scale": eng.scale,
            "images": len(decoded),
            "setup_s": setup_s,
            "compute_images_per_s": len(decoded) / compute_s,
            "end_to_end_images_per_s": len(decoded) / e2e_s,
        }
        r["ratio"] = r["end_to_end_images_per_s"] / r["compute_images_per_s"]
        rows.append(r)
        print(
            f"{mode:>5} ({r['precision']}, scale {r['scale']}): compute {r['compute_images_per_s']:.2f} img/s, "
            f"end to end {r['end_to_end_images_per_s']:.2f} img/s = {r['ratio']:.0%} "
            f"(engine set-up {setup_s:.1f} s)",
            flush=True,
        )
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(
            json.dumps({"threads": a.threads, "decode_s": decode_s, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()

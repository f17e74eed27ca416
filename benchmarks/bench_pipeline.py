"""End-to-end images/s of ``sclle enhance`` against pure compute, exact and fast (issue 15, item 4).

One engine per mode, built as the CLI builds it (bundled model, ``--precision auto``, auto-tiling).
*compute* runs it over the already-decoded tensors of every image, both one image at a time on every
thread and one image per thread (the two schedules of a batch), and the ratio is taken against the
faster of the two; *end to end* is
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch


def measure(mode: str, a: argparse.Namespace, items: list, decoded: list[torch.Tensor]) -> dict:
    from sclle.enhancement.api import build_engine
    from sclle.enhancement.batch import enhance_files, parallel_images

    t0 = time.perf_counter()
    eng = build_engine(None, fast_scale="auto" if mode == "fast" else None, precision="auto", device="cpu")
    setup_s = time.perf_counter() - t0
    eng(decoded[0][..., :64, :64])  # warm-up
    schedule = parallel_images([(p, p) for p, _ in items], eng)

    def serial() -> float:  # one image at a time on every thread
        t0 = time.perf_counter()
        for x in decoded:
            eng(x)
        return time.perf_counter() - t0

    def per_thread() -> float:  # one image per thread, one torch thread each (as the batch does)
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.threads) as pool:
            list(pool.map(eng, decoded))
        torch.set_num_threads(a.threads)
        return time.perf_counter() - t0

    def end_to_end(parallel: int | None = None) -> float:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = enhance_files(
                a.data, Path(d) / "out", eng, progress=False, workers=a.workers, parallel=parallel
            )
            s = time.perf_counter() - t0
        if res.failed or res.enhanced != len(decoded):
            raise SystemExit(f"{mode}: {res.enhanced} enhanced, failed: {res.failed[:3]}")
        return s

    times: dict[str, list[float]] = {"serial": [], "per_thread": [], "e2e": [], "e2e_one": []}
    for _ in range(a.repeats):  # alternated, best of each: the machine is shared and noisy
        times["serial"].append(serial())
        times["per_thread"].append(per_thread())
        times["e2e"].append(end_to_end())
        times["e2e_one"].append(end_to_end(parallel=1))
    best = {k: len(decoded) / min(v) for k, v in times.items()}
    compute = max(best["serial"], best["per_thread"])
    r = {
        "mode": mode,
        "precision": eng.precision,
        "scale": eng.scale,
        "images": len(decoded),
        "setup_s": setup_s,
        "batch_parallel_images": schedule,
        "compute_serial_images_per_s": best["serial"],
        "compute_per_thread_images_per_s": best["per_thread"],
        "compute_images_per_s": compute,
        "end_to_end_images_per_s": best["e2e"],
        "end_to_end_one_at_a_time_images_per_s": best["e2e_one"],
    }
    r["ratio"] = r["end_to_end_images_per_s"] / compute
    print(
        f"{mode:>5} ({r['precision']}, scale {r['scale']}): compute {best['serial']:.2f} img/s one image "
        f"at a time, {best['per_thread']:.2f} one image per thread; end to end "
        f"{best['e2e']:.2f} img/s (batch runs {schedule} at once) = {r['ratio']:.0%} of the faster "
        f"compute; --parallel 1: {best['e2e_one']:.2f} img/s (engine set-up {setup_s:.1f} s)",
        flush=True,
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="exact,fast")
    ap.add_argument("--workers", type=int, default=2, help="reader and writer threads (the CLI's default)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle import imageio

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
        rows.append(measure(mode, a, items, decoded))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(
            json.dumps({"threads": a.threads, "decode_s": decode_s, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()

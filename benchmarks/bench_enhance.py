"""Enhancement speed and memory on CPU: exact / fast / tiled, and end-to-end images/s.

Each (mode, size) runs in a fresh subprocess so that peak RSS is that configuration's alone.
The naive baseline reproduces how the authors' test script runs: the network is rebuilt and the
checkpoint loaded as shipped (no subnormal flush) for every image, plain ``torch.no_grad``.

    python benchmarks/bench_enhance.py --weights ../shared/weights/SCL-LLE.pth \
        --data ../shared/data/DICM ../shared/data/LIME --threads 2 --out benchmarks/results/enhance.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one(mode: str, size: str, weights: str, threads: int, repeats: int) -> dict:
    """Time one configuration in this process (called in a subprocess)."""
    import torch

    torch.set_num_threads(threads)
    from sclle.enhancement.engine import Engine, EngineConfig
    from sclle.models.dce import DCENet
    from sclle.models.registry import load_weights

    h, w = SIZES[size]
    x = torch.rand(1, 3, h, w) * 0.3
    base = _rss_mb()
    times = []
    if mode == "naive":
        for _ in range(repeats):
            t0 = time.perf_counter()
            net = DCENet()
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            with torch.no_grad():
                net.enhance(x)
            times.append(time.perf_counter() - t0)
    else:
        net, _ = load_weights(weights)
        cfg = {
            "exact": EngineConfig(),
            "exact-nchw": EngineConfig(channels_last=False),
            "fast-0.5": EngineConfig(fast_scale=0.5),
            "fast-0.25": EngineConfig(fast_scale=0.25),
            "tiled-512": EngineConfig(tile=512),
        }[mode]
        eng = Engine(net, cfg)
        eng(x[..., :64, :64])  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            eng(x)
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "size": size,
        "seconds": min(times),
        "peak_rss_mb": peak,
        "delta_rss_mb": peak - base,
    }


def end_to_end(data: list[str], weights: str, threads: int, tmp: Path) -> list[dict]:
    import shutil

    import torch

    torch.set_num_threads(threads)
    from sclle import imageio
    from sclle.enhancement.batch import enhance_files
    from sclle.enhancement.engine import Engine, EngineConfig
    from sclle.models.dce import DCENet
    from sclle.models.registry import load_weights

    items, _ = imageio.find_images(data)
    files = [p for p, _ in items]
    rows = []
    # naive: as the released test script (rebuild + load per image, PIL in/out, no flush)
    out = tmp / "naive"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    import numpy as np
    from PIL import Image

    for p in files:
        net = DCENet()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        img = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            y = net.enhance(x)
        arr = (y[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(arr).save(out / (p.stem + ".png"))
    dt = time.perf_counter() - t0
    rows.append(
        {
            "pipeline": "naive (released script style)",
            "images": len(files),
            "seconds": dt,
            "images_per_s": len(files) / dt,
        }
    )
    net, _ = load_weights(weights)
    for label, cfg in [
        ("sclle exact", EngineConfig()),
        ("sclle fast 0.5", EngineConfig(fast_scale=0.5)),
        ("sclle fast 0.25", EngineConfig(fast_scale=0.25)),
    ]:
        out = tmp / label.replace(" ", "_")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        res = enhance_files(data, out, Engine(net, cfg), format="png", progress=False)
        dt = time.perf_counter() - t0
        rows.append(
            {
                "pipeline": label,
                "images": len(res.written),
                "seconds": dt,
                "images_per_s": len(res.written) / dt,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--modes", default="naive,exact-nchw,exact,fast-0.5,fast-0.25,tiled-512")
    ap.add_argument("--out", default="benchmarks/results/enhance.json")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], a.weights, a.threads, a.repeats)))
        return
    rows = []
    for size in a.sizes.split(","):
        for mode in a.modes.split(","):
            reps = (
                1
                if (size == "3840x2160" and mode in {"naive", "exact", "exact-nchw", "tiled-512"})
                else a.repeats
            )
            cmd = [
                sys.executable,
                __file__,
                "--weights",
                a.weights,
                "--threads",
                str(a.threads),
                "--repeats",
                str(reps),
                "--one",
                mode,
                size,
            ]
            r = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            rows.append(r)
            print(
                f"{size:>10} {mode:>10} {r['seconds']:8.3f} s  peak RSS {r['peak_rss_mb']:7.0f} MB",
                flush=True,
            )
    e2e = []
    if a.data:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            e2e = end_to_end(a.data, a.weights, a.threads, Path(d))
        for r in e2e:
            print(
                f"{r['pipeline']:>30}: {r['images']} images in {r['seconds']:.1f} s = {r['images_per_s']:.2f} img/s"
            )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"per_image": rows, "end_to_end": e2e, "threads": a.threads}, indent=1))


if __name__ == "__main__":
    main()

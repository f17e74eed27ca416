"""Time each sclle metric on one 1920x1080 image (default: 2 CPU threads, median of 5 runs after a warm-up).

    python benchmarks/bench_metrics.py [--threads 2] [--repeats 5] [--device cpu]

The image is synthetic (smooth random structure + noise, fixed seed): the metrics' cost depends on
the size, not the content. Prints one line per metric; the NIQE target is <= 0.5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from sclle import metrics


def _image(seed: int, h: int, w: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 16, w // 16, generator=g)
    x = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    return (x + 0.02 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1).to(device)


def _time(fn, repeats: int, device: str) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds (CPU time is summed over threads; on a shared,
    oversubscribed machine it is the steadier of the two)."""
    fn()  # warm-up (caches, allocator)
    wall, cpu = [], []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--width", type=int, default=1920)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    h, w, dev = args.height, args.width, args.device
    x, ref = _image(0, h, w, dev), _image(1, h, w, dev)
    labels_gt = torch.randint(0, 12, (1, h, w), generator=torch.Generator().manual_seed(2)).to(dev)
    labels_gt[labels_gt == 11] = 255
    labels_pred = torch.randint(0, 11, (1, h, w), generator=torch.Generator().manual_seed(3)).to(dev)

    cases = {
        "niqe": lambda m: m(x),
        "piqe": lambda m: m(x),
        "entropy": lambda m: m(x),
        "psnr": lambda m: m(x, ref),
        "ssim": lambda m: m(x, ref),
        "lpips": lambda m: m(x, ref),
        "miou": lambda m: m(labels_pred, labels_gt),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# {w}x{h}, device={dev}, torch threads={torch.get_num_threads()}, median of {args.repeats}, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'metric':8s} {'wall s':>8s} {'cpu s':>8s}")
    for info in metrics.list_metrics():
        kwargs = {"num_classes": 11} if info.kind == "seg" else {}
        module = metrics.create(info.name, **kwargs).to(dev)
        call = cases[info.name]
        with torch.no_grad():
            wall, cpu = _time(lambda m=module, c=call: c(m), args.repeats, dev)
        print(f"{info.name:8s} {wall:8.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()

"""CPU cost of the segmenter: forward time at 480x360 per backbone, and training seconds per step.

    python benchmarks/bench_segmentation.py [--threads 2] [--reps 3] [--train-batch 4]

Forward and training step are timed in both memory formats (contiguous NCHW and channels-last), since the
trainer and the darkness benchmark use channels-last on CPU because of these numbers.

Reports the minimum over ``reps`` (other processes on a shared machine only ever add time).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from sclle.models.segmentation import deeplabv3plus


def _best(fn, reps: int) -> tuple[float, float]:
    """(min wall seconds, min process CPU seconds); CPU time is the steadier figure on a busy machine."""
    fn()  # warm-up (oneDNN primitive creation)
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--crop", type=int, nargs=2, default=(352, 480))
    ap.add_argument("--backbones", default="efficientnet-lite0,vgg16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, loadavg {os.getloadavg()[0]:.1f}")
    x = torch.rand(1, 3, 360, 480)
    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    for bb in args.backbones.split(","):
        model = deeplabv3plus(backbone=bb, pretrained_backbone=False).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        for fmt_name, fmt in formats.items():
            m, xf = model.to(memory_format=fmt), x.contiguous(memory_format=fmt)
            with torch.no_grad():
                t, c = _best(lambda m=m, xf=xf: m(xf), args.reps)
            print(
                f"forward 1x3x360x480  {bb:<20} {fmt_name:<13} {params:5.2f} M params  "
                f"wall {t:.3f} s  cpu {c:.3f} s"
            )
    for fmt_name, fmt in formats.items():
        model = deeplabv3plus(pretrained_backbone=False).train().to(memory_format=fmt)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        xb = torch.rand(args.train_batch, 3, *args.crop).contiguous(memory_format=fmt)
        yb = torch.randint(0, 11, (args.train_batch, *args.crop))

        def step(model=model, opt=opt, xb=xb, yb=yb) -> None:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t, c = _best(step, max(1, args.reps - 1))
        print(
            f"train step efficientnet-lite0 {fmt_name:<13} batch {args.train_batch} "
            f"crop {args.crop[0]}x{args.crop[1]}: wall {t:.2f} s/step  cpu {c:.2f} s/step"
        )


if __name__ == "__main__":
    main()

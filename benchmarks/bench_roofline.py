"""Exact mode against this machine's dense throughput, all measured in one process (issue 15, item 2).

Dense peaks: ``torch.mm`` of two 4096x4096 matrices and one 32->32-channel 3x3 convolution on a
1920x1080 NHWC activation (DCE-Net's inner layer), each in fp32 and bf16. The enhancer: the bundled
default model (DCE-Net, ~79.2k multiply-adds per pixel, counted from its layers) in exact mode at
1920x1080 with the engine's defaults (auto-tiling, channels-last), network in fp32 and in bf16.
Achieved GFLOP/s counts 2 FLOP per multiply-add of the untiled network (halo recomputation and the
curve steps are extra work that is not counted, so the ratio is conservative).

    python benchmarks/bench_roofline.py --threads 2 --repeats 2 --out benchmarks/results/roofline.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from timing import best


def macs_per_pixel(net: torch.nn.Module) -> int:
    """Multiply-adds per output pixel of a network of stride-1 convolutions (weights' sizes)."""
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default=None, help="registry name or weights file (default: bundled)")
    ap.add_argument(
        "--precisions",
        default=None,
        help="comma-separated (default: fp32, plus bf16 where the CPU has it natively: emulated bf16 is "
        "10x slower and says nothing about a roofline)",
    )
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from sclle.enhancement.engine import Engine, EngineConfig, cpu_has_native_bf16

    precisions = (
        a.precisions.split(",") if a.precisions else ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])
    )
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    from sclle.models.registry import load_weights

    h, w = 1080, 1920
    rows: dict[str, float] = {}
    with torch.inference_mode():
        for name in precisions:
            dt = dtypes[name]
            m = torch.randn(4096, 4096).to(dt)
            rows[f"mm_{name}"] = 2 * 4096**3 / best(lambda m=m: torch.mm(m, m), a.repeats) / 1e9
            conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(dt).to(memory_format=torch.channels_last)
            act = torch.rand(1, 32, h, w).to(dt).contiguous(memory_format=torch.channels_last)
            flop = 2 * 32 * 32 * 9 * h * w
            rows[f"conv_{name}"] = flop / best(lambda c=conv, x=act: c(x), a.repeats) / 1e9
            del m, conv, act
        net, _ = load_weights(a.model)
        mac = macs_per_pixel(net)
        x = torch.rand(1, 3, h, w) * 0.3
        seconds = {}
        for name in precisions:
            eng = Engine(net, EngineConfig(precision=name))
            seconds[name] = best(lambda e=eng: e(x), a.repeats)
            rows[f"enhancer_{name}"] = 2 * mac * h * w / seconds[name] / 1e9
    res = {
        "threads": a.threads,
        "native_bf16": cpu_has_native_bf16(),
        "macs_per_pixel": mac,
        "gflops": rows,
        "enhancer_seconds": seconds,
        "ratio_enhancer_to_mm": {p: rows[f"enhancer_{p}"] / rows[f"mm_{p}"] for p in precisions},
        "ratio_enhancer_to_conv": {p: rows[f"enhancer_{p}"] / rows[f"conv_{p}"] for p in precisions},
        "speedup_bf16_vs_fp32": seconds["fp32"] / seconds["bf16"] if len(seconds) == 2 else None,
    }
    print(
        f"{'':10} {'mm 4096²':>10} {'conv 3x3':>10} {'enhancer':>10} {'enh/mm':>7} {'enh/conv':>8}  (GFLOP/s)"
    )
    for p in precisions:
        print(
            f"{p:10} {rows[f'mm_{p}']:10.1f} {rows[f'conv_{p}']:10.1f} {rows[f'enhancer_{p}']:10.1f} "
            f"{res['ratio_enhancer_to_mm'][p]:7.0%} {res['ratio_enhancer_to_conv'][p]:8.0%}"
        )
    line = ", ".join(f"{p} {s:.2f} s" for p, s in seconds.items())
    if res["speedup_bf16_vs_fp32"]:
        line += f" -> bf16 {res['speedup_bf16_vs_fp32']:.2f}x faster"
    print(f"exact 1920x1080: {line} ({mac} MAC/pixel, native bf16: {res['native_bf16']})")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

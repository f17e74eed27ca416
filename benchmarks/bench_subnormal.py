"""What tiny weights cost on this CPU: DCE-Net forward with decayed channels, raw against flushed.

A from-scratch run's dead channels decay (Adam + weight decay) to weights of 1e-35..1e-31: normal floats,
but their products with small activations are subnormal, which x86 CPUs compute in microcode. Loading
zeroes every weight below ``NEGLIGIBLE_WEIGHT`` (bit-identical curves). This measures, in one process,
the forward at the given size with the raw weights and with the flushed ones, and checks the curves are
equal.

    python benchmarks/bench_subnormal.py --threads 1                         # bundled default, 40 % decayed
    python benchmarks/bench_subnormal.py --weights runs/cpu-scratch/checkpoints/step_0004533.pt

With no ``--weights`` it takes the bundled default and sets 40 % of its output channels (conv2-conv6)
to 1e-37, as a stand-in for a run's dead channels.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from timing import best

from sclle.core.weights import NEGLIGIBLE_WEIGHT, flush_subnormals_
from sclle.models.dce import DCENet
from sclle.models.registry import load_weights, read_state_dict


def raw_net(weights: str | None) -> DCENet:
    """The network exactly as stored (no flush), or the bundled default with decayed channels."""
    if weights is None:
        net, _ = load_weights("sclle-default")
        net = copy.deepcopy(net)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for i in range(2, 7):
                w = getattr(net, f"e_conv{i}").weight
                dead = torch.randperm(w.shape[0], generator=g)[: int(0.4 * w.shape[0])]
                w[dead] = 1e-37
        return net
    sd = read_state_dict(weights)  # checkpoints too; nothing flushed
    net = DCENet()
    net.load_state_dict(sd, strict=True)
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    raw = raw_net(a.weights)
    flushed = copy.deepcopy(raw)
    n = flush_subnormals_(flushed, below=NEGLIGIBLE_WEIGHT)
    x = torch.rand(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        equal = torch.equal(raw(x), flushed(x))
        t_raw = best(lambda: raw(x), a.repeats)
        t_flushed = best(lambda: flushed(x), a.repeats)
    res = {
        "weights": a.weights or "sclle-default, 40% of conv2-6 channels at 1e-37",
        "size": a.size,
        "threads": a.threads,
        "weights_zeroed": n,
        "curves_bit_identical": equal,
        "raw_s": round(t_raw, 4),
        "flushed_s": round(t_flushed, 4),
        "speedup": round(t_raw / t_flushed, 2),
    }
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()

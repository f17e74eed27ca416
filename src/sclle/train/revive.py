"""Give a DCE-Net's dead channels a second life without changing what the network computes.

Adam with (coupled) L2 weight decay zeroes a channel that stays inactive for a few hundred steps: its only
gradient is ``wd * w``, which Adam normalises to a step of ``lr`` towards zero. The CPU run had lost about
half of conv2-conv6 that way by step 4533 (conv4: 26 of 32 channels). :func:`revive_dead_channels` does
what ReDo does (Sokar et al., "The Dormant Neuron Phenomenon in Deep RL", ICML 2023): fresh incoming
weights (He-normal, bias 0) and *zero* outgoing weights in every layer that reads the channel, so the
output is exactly what it was and the gradient first grows the outgoing weights; Adam's moments of the
re-drawn entries are reset. A channel counts as dead when all its incoming weights are below ``eps``; one
with a positive bias that a later layer still reads (a constant map used as a bias) is left alone, since
zeroing its readers would change the output.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["READERS", "revive_dead_channels"]

#: Which layers read each layer's output channels: (reader, first input channel of the block).
#: DCE-Net: conv5 reads cat(x3, x4), conv6 cat(x2, x5), conv7 cat(x1, x6).
READERS = {
    1: [(2, 0), (7, 0)],
    2: [(3, 0), (6, 0)],
    3: [(4, 0), (5, 0)],
    4: [(5, 32)],
    5: [(6, 32)],
    6: [(7, 32)],
}
PARAM_ORDER = [f"e_conv{i}.{p}" for i in range(1, 8) for p in ("weight", "bias")]


def revive_dead_channels(ckpt: dict[str, Any], eps: float = 1e-6, seed: int = 0) -> dict[str, list[int]]:
    """Revive the dead channels of ``ckpt`` (a trainer checkpoint: ``model`` and, if present, Adam's
    ``optimizer`` state) in place; return the revived channel indices per layer."""
    sd = ckpt["model"]
    opt = ckpt.get("optimizer", {}).get("state", {})
    g = torch.Generator().manual_seed(seed)
    done: dict[str, list[int]] = {}

    def reset_moments(name: str, index) -> None:
        st = opt.get(PARAM_ORDER.index(name))
        if st:
            for k in ("exp_avg", "exp_avg_sq"):
                if k in st:
                    st[k][index] = 0

    for i, readers in READERS.items():
        w, b = sd[f"e_conv{i}.weight"], sd[f"e_conv{i}.bias"]
        dead = (w.abs().amax(dim=(1, 2, 3)) < eps).nonzero().flatten().tolist()
        revived = []
        for c in dead:
            read = any(sd[f"e_conv{r}.weight"][:, o + c].abs().max() >= eps for r, o in readers)
            if b[c] > 0 and read:
                continue  # a constant map that a reader uses as a bias: reviving would change the output
            fan_in = w[c].numel()
            w[c] = torch.randn(w[c].shape, generator=g) * math.sqrt(2.0 / fan_in)
            b[c] = 0.0
            reset_moments(f"e_conv{i}.weight", c)
            reset_moments(f"e_conv{i}.bias", c)
            for r, o in readers:
                sd[f"e_conv{r}.weight"][:, o + c] = 0.0
                reset_moments(f"e_conv{r}.weight", (slice(None), o + c))
            revived.append(c)
        done[f"e_conv{i}"] = revived
    return done

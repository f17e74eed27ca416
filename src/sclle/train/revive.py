"""Give a DCE-Net's dead channels a second life without changing what the network computes.

Adam with (coupled) L2 weight decay zeroes a channel that stays inactive for a few hundred steps: its only
gradient is ``wd * w``, which Adam normalises to a step of ``lr`` towards zero. The CPU run had lost about
half of conv2-conv6 that way by step 4533 (conv4: 26 of 32 channels). :func:`revive_dead_channels` does
what ReDo does (Sokar et al., "The Dormant Neuron Phenomenon in Deep RL", ICML 2023): fresh incoming
weights (He-normal, bias 0) and *zero* outgoing weights in every layer that reads the channel, so the
output is what it was and the gradient first grows the outgoing weights.

A channel counts as dead when all its incoming weights are below ``eps`` (default 1e-20: whatever such a
channel adds is far below float32 resolution). One with a positive bias that a later layer still reads (a
constant map used as a bias) is left alone, since zeroing its readers would change the output. The
result is checked: the curve maps on a probe image must stay within ``tol`` of the original's, else
nothing is changed and a ``ValueError`` says by how much they moved.

Adam's state: the re-drawn entries get a first moment of 0 and a second moment equal to the mean of the
same tensor's other entries. (Resetting both to 0 while the tensor's step count stays large would turn
off Adam's bias correction for them: first updates of ~3-6x the learning rate.)
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

__all__ = ["readers", "revive_dead_channels"]

PARAM_ORDER = [f"e_conv{i}.{p}" for i in range(1, 8) for p in ("weight", "bias")]


def readers(width: int) -> dict[int, list[tuple[int, int]]]:
    """Which layers read each layer's output channels: ``{layer: [(reader, first input channel)]}``.

    DCE-Net: conv5 reads cat(x3, x4), conv6 cat(x2, x5), conv7 cat(x1, x6).
    """
    return {
        1: [(2, 0), (7, 0)],
        2: [(3, 0), (6, 0)],
        3: [(4, 0), (5, 0)],
        4: [(5, width)],
        5: [(6, width)],
        6: [(7, width)],
    }


def _curves(sd: dict[str, torch.Tensor], probe: torch.Tensor) -> torch.Tensor:
    from sclle.models.dce import DCENet

    net = DCENet(width=sd["e_conv1.weight"].shape[0])
    net.load_state_dict(sd)
    with torch.no_grad():
        return net(probe)  # the curve maps


def revive_dead_channels(
    ckpt: dict[str, Any], eps: float = 1e-20, seed: int = 0, tol: float = 1e-6
) -> dict[str, list[int]]:
    """Revive the dead channels of ``ckpt`` (a trainer checkpoint: ``model`` and, if present, Adam's
    ``optimizer`` state) in place; return the revived channel indices per layer."""
    sd = {k: v.clone() for k, v in ckpt["model"].items()}
    opt_state = copy.deepcopy(ckpt.get("optimizer", {}).get("state", {}))
    width = sd["e_conv1.weight"].shape[0]
    g = torch.Generator().manual_seed(seed)
    done: dict[str, list[int]] = {}
    touched: dict[str, list] = {}

    for i, reads in readers(width).items():
        w, b = sd[f"e_conv{i}.weight"], sd[f"e_conv{i}.bias"]
        dead = (w.abs().amax(dim=(1, 2, 3)) < eps).nonzero().flatten().tolist()
        revived = []
        for c in dead:
            read = any(sd[f"e_conv{r}.weight"][:, o + c].abs().max() >= eps for r, o in reads)
            if b[c] > 0 and read:
                continue  # a constant map that a reader uses as a bias: reviving would change the output
            fan_in = w[c].numel()
            w[c] = torch.randn(w[c].shape, generator=g) * math.sqrt(2.0 / fan_in)
            b[c] = 0.0
            touched.setdefault(f"e_conv{i}.weight", []).append(c)
            touched.setdefault(f"e_conv{i}.bias", []).append(c)
            for r, o in reads:
                sd[f"e_conv{r}.weight"][:, o + c] = 0.0
                touched.setdefault(f"e_conv{r}.weight", []).append((slice(None), o + c))
            revived.append(c)
        done[f"e_conv{i}"] = revived

    for name, indices in touched.items():
        st = opt_state.get(PARAM_ORDER.index(name))
        if not st:
            continue
        if st.get("exp_avg") is not None and st["exp_avg"].shape != sd[name].shape:
            raise ValueError(f"optimizer state does not match {name} (not a single-group Adam over DCE-Net)")
        fresh = torch.zeros(sd[name].shape, dtype=torch.bool)
        for index in indices:
            fresh[index] = True
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if st.get(k) is None:
                continue
            live = st[k][~fresh]
            st[k][fresh] = 0.0 if k == "exp_avg" else (live.mean() if live.numel() else 0.0)

    probe = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    moved = (_curves(sd, probe) - _curves(ckpt["model"], probe)).abs().max().item()
    if moved > tol:
        raise ValueError(f"reviving would change the curve maps by up to {moved:.3g} (> {tol:g}); lower eps")
    ckpt["model"] = sd
    if "optimizer" in ckpt:
        ckpt["optimizer"]["state"] = opt_state
    return done

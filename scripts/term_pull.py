"""Which loss term pulls the enhancer's colours and lightness: the first-order effect of each term's update.

A cast that grows with training comes from some term of the objective; an A/B per term costs hours
of CPU training. This measures it in minutes: at a checkpoint, for each weighted term ``L_k`` it takes
the gradient over several training batches, turns it into the update Adam would make from it (divided
by the checkpoint's ``sqrt(v_hat) + eps``, the optimizer's own per-weight scale), and measures what that
update does to the outputs on the scorecard's CamVid pairs: the change of the mean lightness ``L*`` and of
the mean ``(a*, b*)`` shift against the original (negative a*: green, positive b*: yellow) and of its
length (the ``cast`` column). The raw network is applied (no adaptive exposure), at ``--side`` px.

Effects are first order, for a step of ``--steps`` times the learning rate, and add up over terms (the
``sum`` row; ``total`` recomputes it from the summed loss as a check). Momentum and Adam's non-linearity
make the real trajectory differ; this ranks the terms, it does not predict the cast.

    python scripts/term_pull.py runs/cpu-scratch-col25/checkpoints/step_0012047.pt --batches 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from sclle.evaluate.datasets import DatasetSpec
from sclle.evaluate.suite import MODERATE, STRONG
from sclle.losses.objective import SCLObjective
from sclle.models.dce import apply_curves
from sclle.train.build import build_prior, build_street, curves_model, init_enhancer, step_losses
from sclle.train.checkpoint import load_checkpoint
from sclle.train.config import TrainConfig, apply_overrides
from sclle.train.distributed import DistContext
from sclle.train.pool_stats import RunPool

_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])  # D65, as scikit-image's rgb2lab


def mean_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Mean CIELAB (L*, a*, b*) per image of (B, 3, H, W) sRGB in [0, 1] (scikit-image's formulas)."""
    x = rgb.clamp(0, 1)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).clamp_min(1e-8) ** 2.4, x / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", _XYZ, lin) / _WHITE.view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-8) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lum = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([lum.mean((1, 2)), a.mean((1, 2)), b.mean((1, 2))], 1)


def eval_pairs(root: Path, limit: int, side: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The scorecard's CamVid pairs (moderate and strong), downscaled to ``side`` px wide for speed."""
    out = []
    for name, protocol in (("moderate", MODERATE), ("strong", STRONG)):
        spec = DatasetSpec(name, root / "camvid" / "test", "synthetic", protocol)
        xs, refs = [], []
        for item in spec.items(limit):
            x, ref = spec.load(item)
            size = (round(x.shape[-2] * side / x.shape[-1]), side)
            xs.append(torch.nn.functional.interpolate(x, size, mode="area"))
            refs.append(torch.nn.functional.interpolate(ref, size, mode="area"))
        out.append((name, torch.cat(xs), mean_lab(torch.cat(refs))))
    return out


@torch.no_grad()
def shifts(net: torch.nn.Module, pairs) -> dict[str, torch.Tensor]:
    """Per level: (mean ΔL*, mean Δa*, mean Δb*, mean |Δab|) of the outputs against the originals."""
    res = {}
    for name, x, ref_lab in pairs:
        d = mean_lab(apply_curves(x, net(x))) - ref_lab
        res[name] = torch.cat([d.mean(0), d[:, 1:].norm(dim=1).mean().view(1)])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument(
        "--batches", type=int, default=16, help="training batches the gradients are averaged over"
    )
    ap.add_argument("--steps", type=float, default=100.0, help="effect of this many steps' worth of update")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--limit", type=int, default=10, help="CamVid test images per level")
    ap.add_argument("--side", type=int, default=240)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)"
    )
    a = ap.parse_args()

    ckpt = load_checkpoint(a.checkpoint)
    cfg = TrainConfig.from_dict(apply_overrides(dict(ckpt["config"]), a.set))
    cfg.validate()
    dev = torch.device("cpu")
    net = init_enhancer(cfg)
    net.load_state_dict(ckpt["model"])
    net.eval()  # DCE-Net has no batch-norm or dropout: eval only stops autograd bookkeeping differences
    objective = SCLObjective(cfg.loss, vgg_weights=cfg.model.vgg_weights)
    needs = objective.requirements()
    prior = build_prior(cfg, needs, dev)
    street = build_street(cfg, dev)
    model = curves_model(net, needs)
    pool = RunPool.load(cfg, objective.vgg, needs, DistContext(), dev) if needs.pool else None

    params = list(net.parameters())
    start = int(ckpt["step"])
    grads: dict[str, torch.Tensor] = {}
    for k in range(a.batches):
        step = start + k
        batch = street.batch(step, cfg.schedule.batch)
        pos, neg = pool.draw(step) if pool is not None else (None, None)
        losses, _ = step_losses(model, needs, objective, prior, batch.low, batch.labels, pos, neg)
        names = [n for n in losses if n != "total"] + ["total"]
        g = {}
        for n in names:
            gn = torch.autograd.grad(losses[n], params, retain_graph=True, allow_unused=True)
            g[n] = torch.cat(
                [
                    (gi if gi is not None else torch.zeros_like(p)).flatten()
                    for gi, p in zip(gn, params, strict=True)
                ]
            )
        # the trainer clips the total gradient's norm; every term shares the clip factor of its batch
        clip = cfg.optim.grad_clip
        factor = min(1.0, clip / (float(g["total"].norm()) + 1e-6)) if clip else 1.0
        for n in names:
            grads[n] = grads.get(n, 0) + g[n] * factor / a.batches
        print(
            f"batch {k + 1}/{a.batches}: " + ", ".join(f"{n} {float(losses[n]):.4f}" for n in names),
            flush=True,
        )

    # Adam's per-weight scale at the next step: its second moment updated with the mean total gradient
    # (a weight whose moment had decayed to ~0 would otherwise get an update no real step makes)
    opt = ckpt["optimizer"]
    beta2, eps, lr = opt["param_groups"][0]["betas"][1], opt["param_groups"][0]["eps"], cfg.optim.lr
    v = torch.cat([opt["state"][i]["exp_avg_sq"].flatten() for i in range(len(params))])
    t = float(opt["state"][0]["step"]) + 1
    v_hat = (beta2 * v + (1 - beta2) * grads["total"] ** 2) / (1 - beta2**t)
    scale = lr / (v_hat.sqrt() + eps)
    updates = {n: -g * scale for n, g in grads.items()}  # one step's worth

    pairs = eval_pairs(a.data_root, a.limit, a.side)
    theta = parameters_to_vector(params).detach().clone()
    base = shifts(net, pairs)
    print(
        f"\nat step {start}: "
        + "; ".join(
            f"{lv} ΔL* {v[0]:+.2f} Δa* {v[1]:+.2f} Δb* {v[2]:+.2f} |Δab| {v[3]:.2f}" for lv, v in base.items()
        )
    )
    print(f"effect of {a.steps:g} steps' worth of each term's update (central difference):\n")
    print(
        "| term | ‖update‖ | mod ΔL* | mod Δa* | mod Δb* | mod cast | strong ΔL* | strong Δa* | strong Δb* | strong cast |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = list(updates.items())
    rows.insert(len(rows) - 1, ("sum", sum(u for n, u in updates.items() if n != "total")))
    for n, u in rows:
        vector_to_parameters(theta + u, params)
        plus = shifts(net, pairs)
        vector_to_parameters(theta - u, params)
        minus = shifts(net, pairs)
        vector_to_parameters(theta, params)
        eff = {lv: a.steps * (plus[lv] - minus[lv]) / 2 for lv in plus}  # linear in the step
        cells = " | ".join(f"{float(v):+.3f}" for lv in ("moderate", "strong") for v in eff[lv])
        print(f"| {n} | {a.steps * float(u.norm()):.2e} | {cells} |")


if __name__ == "__main__":
    main()

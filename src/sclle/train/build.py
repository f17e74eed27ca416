"""What a run trains with, built from its config: the enhancer, the data stream, the frozen segmenter.

Only the DCE-Net enhancer learns. What else is built follows the objective's
:meth:`~sclle.losses.objective.SCLObjective.requirements`: no segmenter without the CE term, no second
enhancer pass without scale consistency.
"""

from __future__ import annotations

import torch
from torch import nn

from sclle.data.darken import DarkenProtocol, NoiseModel
from sclle.data.street import StreetScenes
from sclle.errors import SclleError
from sclle.losses.contrastive import PoolStats
from sclle.losses.objective import ObjectiveNeeds, SCLObjective
from sclle.losses.preservation import estimate_curves_at_scale
from sclle.models.dce import DCENet, apply_curves
from sclle.train.config import TrainConfig

#: Resolution of the second enhancer pass of the scale-consistency term.
SECOND_SCALE = 0.25


def init_enhancer(cfg: TrainConfig) -> DCENet:
    """A DCE-Net initialised as ``model.init`` says (scratch draws from the torch RNG: seed first)."""
    init = cfg.model.init
    if init == "scratch":
        net = DCENet()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.normal_(0.0, cfg.model.init_std)
        return net
    from sclle.models.registry import load_weights

    net, _ = load_weights(init)
    return net.train()


def build_prior(cfg: TrainConfig, needs: ObjectiveNeeds, device: torch.device) -> nn.Module | None:
    """The frozen segmenter the CE term runs on the enhanced image (None when the term is off)."""
    if not needs.segmenter:
        return None
    from sclle.models.segmentation import SemanticPrior, load_segmenter

    try:
        seg = load_segmenter(cfg.model.segmenter, device=device)
    except SclleError as exc:
        raise SclleError(
            f"the semantic CE term needs a segmenter: {exc}; pass model.segmenter=FILE, or train without it "
            "(--set loss.weights.segmentation_ce=0, or --set loss.use_semantic=false)"
        ) from None
    return SemanticPrior(seg).to(device)


def build_street(cfg: TrainConfig, device: torch.device) -> StreetScenes:
    """The darkened street-scene stream of ``data`` (crops, flips, darkening, optional extra photos)."""
    d = cfg.data
    protocol = None
    if d.darken:
        noise = NoiseModel(d.noise_peak, d.noise_read_std) if d.noise_peak else None
        protocol = DarkenProtocol(d.gamma_range, d.exposure_range, noise)
    extra = None
    if d.extra_fraction > 0:
        if not d.extra_dir:
            raise SclleError("data.extra_fraction > 0 needs data.extra_dir")
        from sclle.data.photos import UnlabelledPhotos

        extra = UnlabelledPhotos(d.extra_dir)
    return StreetScenes(
        d.dataset,
        d.root,
        d.split,
        crop=cfg.schedule.crop,
        protocol=protocol,
        hflip=d.hflip,
        seed=cfg.seed,
        preload=d.preload,
        device=device,  # type: ignore[arg-type]
        extra=extra,
        extra_fraction=d.extra_fraction,
    )


class CurvesAndSmall(nn.Module):
    """Curves at full resolution and from a downscaled copy, in *one* forward call.

    The scale-consistency term needs two enhancer passes per step; DDP allows only one forward per
    backward, so both passes live in this module's forward (shared weights are fine under DDP).
    """

    def __init__(self, net: DCENet, scale: float = SECOND_SCALE) -> None:
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), estimate_curves_at_scale(self.net, x, self.scale)


def curves_model(net: DCENet, needs: ObjectiveNeeds) -> nn.Module:
    """The module one step calls: ``x -> curves``, or ``x -> (curves, curves_small_up)`` with a second scale."""
    return CurvesAndSmall(net) if needs.second_scale else net


def step_losses(
    model: nn.Module,
    needs: ObjectiveNeeds,
    objective: SCLObjective,
    prior: nn.Module | None,
    low: torch.Tensor,
    labels: torch.Tensor | None,
    pos: PoolStats | None,
    neg: PoolStats | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One step's forward: curves, enhanced image, segmenter logits, the weighted terms -> (losses, enhanced).

    The trainer's step and diagnostics (``scripts/term_pull.py``) share it, so they measure the same objective.
    """
    out = model(low)
    curves, small_up = out if needs.second_scale else (out, None)
    enhanced = apply_curves(low, curves)
    seg_logits = prior(enhanced) if prior is not None else None
    losses = objective(
        low,
        enhanced,
        curves,
        labels=labels,
        seg_logits=seg_logits,
        pos_stats=pos,
        neg_stats=neg,
        curves_small_up=small_up,
    )
    return losses, enhanced

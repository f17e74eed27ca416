"""DCE-Net, the curve-estimation enhancer of Zero-DCE and SCL-LLE.

The layer names (``e_conv1`` .. ``e_conv7``) match the authors' released checkpoints so that their
``state_dict`` files load with ``strict=True``. The network only *predicts* curve maps; applying
them is :func:`apply_curves`, shared by every execution mode (exact, fast, tiled, export).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sclle.core.weights import WeightsEntry, flush_subnormals_
from sclle.models.base import Enhancer, apply_le_curves, build, downscale, scale_curves
from sclle.models.chroma import KeepChroma, keep_chroma_
from sclle.models.exposure import ExposureControl

__all__ = ["DCENet", "apply_curves", "ApplyCurves", "dce_net", "flush_subnormals_", "WEIGHTS"]

N_ITERATIONS = 8
#: Each 3x3 conv adds 1 pixel of context; 7 convs -> 7 px receptive-field radius.
RECEPTIVE_FIELD_RADIUS = 7


def apply_curves(image: torch.Tensor, curve_maps: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """Apply the 8 light-enhancement curves ``x <- x + r_k (x^2 - x)`` to ``image``.

    Args:
        image: (B, 3, H, W) in [0, 1].
        curve_maps: (B, 24, H, W), 8 maps of 3 channels in [-1, 1]. The released weights use
            this sign convention (a *negative* ``r`` brightens); the paper writes ``x + A x (1 - x)``.
        clamp: clamp the result to [0, 1] (on by default; the curve keeps [0, 1] for |r| <= 1 anyway,
            the clamp only removes float rounding).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    if curve_maps.ndim != 4 or curve_maps.shape[1] != 3 * N_ITERATIONS:
        raise ValueError(f"curve_maps must be (B, 24, H, W), got {tuple(curve_maps.shape)}")
    if curve_maps.shape[0] != image.shape[0] or curve_maps.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"curve_maps {tuple(curve_maps.shape)} do not match image {tuple(image.shape)}")
    return apply_le_curves(image, curve_maps, clamp=clamp)


class ApplyCurves(nn.Module):
    """Module twin of :func:`apply_curves`."""

    def __init__(self, clamp: bool = True) -> None:
        super().__init__()
        self.clamp = clamp

    def forward(self, image: torch.Tensor, curve_maps: torch.Tensor) -> torch.Tensor:
        return apply_curves(image, curve_maps, clamp=self.clamp)


def _conv_of_cat(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``conv(torch.cat([a, b], 1))`` as two convolutions on the weight's halves, summed in place."""
    k = a.shape[1]
    out = F.conv2d(a, conv.weight[:, :k], conv.bias, padding=conv.padding)
    return out.add_(F.conv2d(b, conv.weight[:, k:], None, padding=conv.padding))


class DCENet(Enhancer):
    """Deep Curve Estimation network (79,416 parameters).

    ``forward(x)`` returns the (B, 24, H, W) curve maps; use :meth:`enhance` (or
    :func:`apply_curves`) for the enhanced image. Keeping the two apart lets fast mode estimate
    curves on a small copy and apply them at full resolution.

    ``exposure`` (``{"a", "b", "c", "lo", "hi"}`` and optionally ``"d"``, ``"e"``, ``"f"``, :mod:`sclle.models.exposure`) scales
    each image's curve maps by a strength chosen from its luminance statistics; ``None`` is the paper's network.
    ``chroma_keep`` (``k`` in [0, 1], :mod:`sclle.models.chroma`) restores that fraction of the input's colour
    ratios after the curves; 0 (the paper) leaves the curves' output as it is.
    """

    arch = "dce-net"
    family = "curves"
    receptive_radius = RECEPTIVE_FIELD_RADIUS
    supports_fast = True

    def __init__(
        self, width: int = 32, exposure: dict[str, float] | None = None, chroma_keep: float = 0.0
    ) -> None:
        super().__init__()
        self.exposure = ExposureControl(**exposure) if exposure else None
        self.chroma = KeepChroma(chroma_keep) if chroma_keep else None
        w = width
        self.e_conv1 = nn.Conv2d(3, w, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(w, w, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(w, w, 3, 1, 1)
        self.e_conv4 = nn.Conv2d(w, w, 3, 1, 1)
        self.e_conv5 = nn.Conv2d(2 * w, w, 3, 1, 1)
        self.e_conv6 = nn.Conv2d(2 * w, w, 3, 1, 1)
        self.e_conv7 = nn.Conv2d(2 * w, 3 * N_ITERATIONS, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without its concatenations, each activation freed once the last layer reading it ran.

        A 3x3 convolution of ``cat([a, b])`` is the sum of two convolutions with the halves of its weight,
        so the 64-channel copies are never made, and x3/x4, x2/x5 die after conv5 / conv6: the live set
        drops from ~10 to ~6 activation planes of 32 channels (BENCHMARKS.md, memory). Same arithmetic up to
        the order of a sum (~1e-7); for inference only (no gradients needed, in-place ReLUs).
        """
        x1 = F.relu_(self.e_conv1(x))
        x2 = F.relu_(self.e_conv2(x1))
        x3 = F.relu_(self.e_conv3(x2))
        x4 = F.relu_(self.e_conv4(x3))
        x5 = _conv_of_cat(self.e_conv5, x3, x4)
        del x3, x4
        x6 = _conv_of_cat(self.e_conv6, x2, F.relu_(x5))
        del x2, x5
        return torch.tanh_(_conv_of_cat(self.e_conv7, x1, F.relu_(x6)))

    def apply(
        self, x: torch.Tensor, params: torch.Tensor, *, strength: float | torch.Tensor = 1.0
    ) -> torch.Tensor:
        y = apply_curves(x, scale_curves(params, strength))
        return y if self.chroma is None else self.chroma(x, y)

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y if self.chroma is None else keep_chroma_(x, y, self.chroma.k)

    def image_strength(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.exposure is None else self.exposure(x)


def dce_net(*, weights: WeightsEntry | None = None, progress: bool = True, **kwargs) -> DCENet:
    """DCE-Net, optionally with registered weights (``sclle.models.registry.get_entry(name)``)."""
    return build(DCENet, weights, progress=progress, **kwargs)  # type: ignore[return-value]


#: The authors' releases of this architecture (bundled entries are added by the registry from
#: ``sclle/weights/*.json``).
WEIGHTS: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="scl-lle-official",
        sha256="fc5aa74a6674bb747b325e5a06efbfea2973c10cc93cf25cd2b8f33a038e821f",
        file_name="scl-lle-official-fc5aa74a.pth",
        arch="dce-net",
        url="https://github.com/LingLIx/SCL-LLE/raw/main/checkpoints/SCL-LLE.pth",
        aliases=("SCL-LLE.pth",),
        meta={
            "params": 79416,
            "source": "Liang et al., Semantically Contrastive Learning for Low-light Image Enhancement, "
            "AAAI 2022 (authors' release, repository LingLIx/SCL-LLE, checkpoints/SCL-LLE.pth)",
            "licence": "none stated in the authors' repository: research and comparison use only",
            "research_only": True,
            "training_data": "Cityscapes (inputs) and SICE Part1 (contrastive positives/negatives), per the paper",
            "subnormal_params": 41669,
            "fast_scale": 0.5,
        },
    ),
    WeightsEntry(
        name="zero-dce-official",
        sha256="a4395acb874f320375d9704997cef874eaaaaa26a1777ceb29a92b70f74c3612",
        file_name="zero-dce-official-a4395acb.pth",
        arch="dce-net",
        url="https://github.com/Li-Chongyi/Zero-DCE/raw/master/Zero-DCE_code/snapshots/Epoch99.pth",
        aliases=("ZeroDCE-Epoch99.pth", "Epoch99.pth"),
        meta={
            "params": 79416,
            "source": "Guo et al., Zero-Reference Deep Curve Estimation, CVPR 2020 (authors' release, "
            "repository Li-Chongyi/Zero-DCE, Zero-DCE_code/snapshots/Epoch99.pth)",
            "licence": "CC BY-NC 4.0 (non-commercial research use)",
            "research_only": True,
            "training_data": "SICE Part1 multi-exposure sequences, per the paper",
            "subnormal_params": 19266,
            "fast_scale": 0.5,
        },
    ),
)


def fast_curves(net: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Curve maps estimated on a ``scale``-downscaled copy, upsampled to ``x``'s size.

    The same resampling in training (scale-consistency loss) and inference, so a trained
    consistency carries over exactly.
    """
    if isinstance(net, Enhancer):
        return net.params_at_scale(x, scale)
    if scale >= 1.0:  # any other curve network (tests, wrappers): the default resampling
        return net(x)
    return F.interpolate(net(downscale(x, scale)), size=x.shape[-2:], mode="bilinear", align_corners=False)

"""Feature preservation and the Zero-DCE regularisers kept by SCL-LLE, plus a scale-consistency term.

* :func:`feature_preservation_loss` - ``L_fr = mean((phi(I) - phi(I_H))^2)`` over VGG-16 ``relu4_3``
  features of the low-light input I and the enhanced image I_H: enhancement must not change content.
* :func:`color_constancy_loss` - Zero-DCE's ``L_col = sum_{(p,q)} (J_p - J_q)^2`` over the channel
  pairs (R,G), (R,B), (G,B), J = channel means (grey-world assumption), averaged over the batch.
* :func:`curve_smoothness_loss` - Zero-DCE's illumination smoothness on the curve maps A,
  ``2 / B * (sum (A[..,i+1,j] - A[..,i,j])^2 / ((H-1) W) + sum (A[..,i,j+1] - A[..,i,j])^2 / (H (W-1)))``
  (squared finite differences, summed over batch and the 24 channels, averaged over positions,
  divided by the batch size, times 2 - the released Zero-DCE/SCL-LLE ``L_TV``). The weight
  (200 in both released trainers) is *not* applied here; :class:`~sclle.losses.objective.LossWeights`
  carries it.
* :func:`spatial_consistency_loss` - Zero-DCE's ``L_spa``, not part of SCL-LLE (weight 0 by default):
  on 4x4-average-pooled grey images, the difference between each region and its 4 neighbours should
  be the same in the enhanced image as in the input, ``mean((|Y_i - Y_j| - |I_i - I_j|)^2)``. It keeps
  local contrast from being flattened (veiled blacks) or exaggerated (amplified noise).
* :func:`exposure_control_loss` - Zero-DCE's ``L_exp``, not part of SCL-LLE (weight 0 by default):
  the mean grey level of each 16x16 patch should be near a well-exposed level E (0.6),
  ``mean_k |Y_k - E|``. Unlike a global brightness target it acts per patch, so it lifts dark
  regions and holds back already bright ones (skies) in the same image.
* :func:`hue_preservation_loss` - not part of SCL-LLE (weight 0 by default): ``mean(1 - cos)`` of the
  angle between the RGB vectors of input and output, per 4x4 block: brightening keeps each pixel's
  colour (hue and saturation); a tint or greying costs.
* :func:`scale_consistency_loss` - beyond the paper: curve maps estimated on a x1/4 copy of the input
  and upsampled (what the fast inference mode does) should match those estimated at full
  resolution; ``mean((A_full - up(A_small))^2)``. :func:`estimate_curves_at_scale` produces
  ``up(A_small)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sclle.models.dce import fast_curves  # the model's own curve resampling, shared with inference
from sclle.models.vgg import VGG16Features


def feature_preservation_loss(feat_in: torch.Tensor, feat_out: torch.Tensor) -> torch.Tensor:
    """``mean((feat_out - feat_in)^2)`` between VGG features of the input and the enhanced image."""
    if feat_in.shape != feat_out.shape:
        raise ValueError(f"feature shapes differ: {tuple(feat_in.shape)} vs {tuple(feat_out.shape)}")
    return F.mse_loss(feat_out, feat_in)


class FeaturePreservationLoss(nn.Module):
    """Module twin of :func:`feature_preservation_loss` on images, with a frozen VGG-16.

    ``forward(low, enhanced, *, enhanced_features=None)``; the low-light input's features are
    computed without gradient (the input is data). Pass ``enhanced_features`` (``vgg(enhanced)``)
    to share one VGG pass with the contrastive loss.
    """

    def __init__(self, vgg: VGG16Features, layer: str = "relu4_3") -> None:
        super().__init__()
        if layer not in vgg.layers:
            raise ValueError(f"vgg does not compute {layer!r}; it has {vgg.layers}")
        self.vgg = vgg
        self.layer = layer

    def forward(
        self,
        low: torch.Tensor,
        enhanced: torch.Tensor,
        *,
        enhanced_features: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        with torch.no_grad():
            f_in = self.vgg(low)[self.layer]
        f_out = (self.vgg(enhanced) if enhanced_features is None else enhanced_features)[self.layer]
        return feature_preservation_loss(f_in, f_out)


def color_constancy_loss(image: torch.Tensor) -> torch.Tensor:
    """Zero-DCE colour constancy: ``mean_b sum_{(p,q)} (J_p - J_q)^2``, J = per-channel means.

    The paper's formula. (The released Zero-DCE/SCL-LLE code instead returns
    ``sqrt(sum (J_p - J_q)^4)`` per image; see docs/deviations.md.)
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"color_constancy_loss expects (B, 3, H, W), got {tuple(image.shape)}")
    j = image.mean(dim=(2, 3))  # (B, 3)
    r, g, b = j.unbind(dim=1)
    return ((r - g).pow(2) + (r - b).pow(2) + (g - b).pow(2)).mean()


class ColorConstancyLoss(nn.Module):
    """Module twin of :func:`color_constancy_loss`."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return color_constancy_loss(image)


def hue_preservation_loss(
    low: torch.Tensor, enhanced: torch.Tensor, region: int = 4, eps: float = 1e-4
) -> torch.Tensor:
    """Mean ``1 - cos`` of the angle between the RGB vectors of ``low`` and ``enhanced``, per
    ``region`` x ``region`` block (averaged first, against sensor noise in the dark).

    Not in SCL-LLE (weight 0 by default). Brightening a pixel without changing its colour (``y = k x``)
    costs nothing; a tint or a loss of saturation turns the vector and costs ``~angle**2 / 2``. The
    grey-world colour term pulls every crop's mean towards grey instead, which on dusk scenes left a
    green-cyan cast at low weight and greyed strong colours at high weight (docs/training.md, session 5).
    """
    if low.shape != enhanced.shape or low.ndim != 4 or low.shape[1] != 3:
        raise ValueError(
            f"low {tuple(low.shape)} and enhanced {tuple(enhanced.shape)} must be equal (B, 3, H, W)"
        )
    y = F.avg_pool2d(enhanced, region)
    x = F.avg_pool2d(low, region).to(y.dtype)
    cos = (x * y).sum(dim=1) / (x.norm(dim=1) * y.norm(dim=1) + eps)
    return (1.0 - cos).mean()


class HuePreservationLoss(nn.Module):
    """Module twin of :func:`hue_preservation_loss`: ``forward(low, enhanced)``."""

    def __init__(self, region: int = 4) -> None:
        super().__init__()
        self.region = region

    def forward(self, low: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
        return hue_preservation_loss(low, enhanced, self.region)


def curve_smoothness_loss(curve_maps: torch.Tensor) -> torch.Tensor:
    """Zero-DCE illumination smoothness (total variation) of (B, C, H, W) curve maps, unweighted.

    ``2 / B * (TV_h / ((H-1) W) + TV_w / (H (W-1)))`` with ``TV_h``/``TV_w`` the sums over batch,
    channels and positions of squared vertical/horizontal differences (module docstring). Smooth
    curve maps keep neighbouring pixels' tone curves alike, so enhancement adds no false edges.
    """
    if curve_maps.ndim != 4:
        raise ValueError(f"curve_maps must be (B, C, H, W), got {tuple(curve_maps.shape)}")
    b, _, h, w = curve_maps.shape
    if h < 2 or w < 2:
        raise ValueError(f"curve_maps need H, W >= 2, got {h}x{w}")
    tv_h = (curve_maps[:, :, 1:, :] - curve_maps[:, :, :-1, :]).pow(2).sum()
    tv_w = (curve_maps[:, :, :, 1:] - curve_maps[:, :, :, :-1]).pow(2).sum()
    return 2.0 * (tv_h / ((h - 1) * w) + tv_w / (h * (w - 1))) / b


class CurveSmoothnessLoss(nn.Module):
    """Module twin of :func:`curve_smoothness_loss`."""

    def forward(self, curve_maps: torch.Tensor) -> torch.Tensor:
        return curve_smoothness_loss(curve_maps)


def estimate_curves_at_scale(net: nn.Module, image: torch.Tensor, scale: float = 0.25) -> torch.Tensor:
    """Curve maps estimated by ``net`` on a copy of ``image`` resized by ``scale``, upsampled back.

    Downsampling is bilinear with antialiasing, upsampling bilinear (``align_corners=False``), the
    same resampling as fast-mode inference. Gradients flow into ``net``.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    return fast_curves(net, image, scale)


def scale_consistency_loss(curves_full: torch.Tensor, curves_small_upsampled: torch.Tensor) -> torch.Tensor:
    """``mean((curves_full - curves_small_upsampled)^2)`` (beyond the paper; module docstring).

    Both arguments carry gradients: the full- and the low-resolution estimates move towards each
    other, which makes the fast (estimate-small, apply-large) inference mode faithful.
    """
    if curves_full.shape != curves_small_upsampled.shape:
        raise ValueError(
            f"curve map shapes differ: {tuple(curves_full.shape)} vs {tuple(curves_small_upsampled.shape)}"
        )
    return F.mse_loss(curves_small_upsampled, curves_full)


class ScaleConsistencyLoss(nn.Module):
    """Module twin of :func:`scale_consistency_loss`."""

    def forward(self, curves_full: torch.Tensor, curves_small_upsampled: torch.Tensor) -> torch.Tensor:
        return scale_consistency_loss(curves_full, curves_small_upsampled)


def spatial_consistency_loss(low: torch.Tensor, enhanced: torch.Tensor, region: int = 4) -> torch.Tensor:
    """Zero-DCE's spatial consistency ``mean((|Y_i - Y_j| - |I_i - I_j|)^2)`` (module docstring).

    Y, I: grey (mean over RGB) of ``enhanced`` / ``low`` averaged over ``region`` x ``region``
    blocks; j runs over the up, down, left and right neighbours of region i (pairs that would leave
    the image are left out). Averaged over the batch, regions and the four directions.
    """
    if low.shape != enhanced.shape or low.ndim != 4 or low.shape[1] != 3:
        raise ValueError(
            f"low {tuple(low.shape)} and enhanced {tuple(enhanced.shape)} must be equal (B, 3, H, W)"
        )
    if region < 1 or low.shape[-2] < 2 * region or low.shape[-1] < 2 * region:
        raise ValueError(f"need at least 2x2 regions of {region} px, got {tuple(low.shape[-2:])}")
    y = F.avg_pool2d(enhanced.mean(dim=1, keepdim=True), region)
    x = F.avg_pool2d(low.mean(dim=1, keepdim=True), region).to(y.dtype)
    terms = []
    for dim in (-2, -1):  # vertical, horizontal neighbours; each pair counts for both of its regions
        n = y.shape[dim] - 1
        dy = (y.narrow(dim, 1, n) - y.narrow(dim, 0, n)).abs()
        dx = (x.narrow(dim, 1, n) - x.narrow(dim, 0, n)).abs()
        terms.append((dy - dx).pow(2).mean())
    return (terms[0] + terms[1]) / 2


class SpatialConsistencyLoss(nn.Module):
    """Module twin of :func:`spatial_consistency_loss`: ``forward(low, enhanced)``."""

    def __init__(self, region: int = 4) -> None:
        super().__init__()
        self.region = region

    def forward(self, low: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
        return spatial_consistency_loss(low, enhanced, self.region)


def exposure_control_loss(enhanced: torch.Tensor, level: float = 0.6, patch: int = 16) -> torch.Tensor:
    """Zero-DCE's exposure control ``mean_k |Y_k - level|`` (module docstring).

    Y_k: grey (mean over RGB) of ``enhanced`` averaged over non-overlapping ``patch`` x ``patch``
    blocks (a partial block at the right/bottom edge is left out). The Zero-DCE paper's absolute
    value; its released code squares the difference instead.
    """
    if enhanced.ndim != 4 or enhanced.shape[1] != 3:
        raise ValueError(f"enhanced must be (B, 3, H, W), got {tuple(enhanced.shape)}")
    if patch < 1 or enhanced.shape[-2] < patch or enhanced.shape[-1] < patch:
        raise ValueError(f"need at least one {patch} px patch, got {tuple(enhanced.shape[-2:])}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    y = F.avg_pool2d(enhanced.mean(dim=1, keepdim=True), patch)
    return (y - level).abs().mean()


class ExposureControlLoss(nn.Module):
    """Module twin of :func:`exposure_control_loss`: ``forward(enhanced)``."""

    def __init__(self, level: float = 0.6, patch: int = 16) -> None:
        super().__init__()
        self.level = level
        self.patch = patch

    def forward(self, enhanced: torch.Tensor) -> torch.Tensor:
        return exposure_control_loss(enhanced, self.level, self.patch)

"""Semantic losses of SCL-LLE: brightness consistency inside each semantic region, and the
segmentation cross-entropy of a frozen segmenter run on the enhanced image.

Semantic brightness consistency (paper)::

    L_sc = sum_s sum_{i in theta_s} (B_i - mean_{j in theta_s} B_j)^2

with B the per-pixel brightness (mean of R, G, B) and theta_s the pixels of class s. Pixels of one
object share depth and lighting, so their brightness should stay consistent after enhancement;
this discourages uneven local exposure. We follow the paper: regions are taken *per image* (the
released code pooled the pixels of a class over the whole batch, so two correctly exposed images of
different brightness were penalised), void pixels (``ignore_index``) are excluded, and classes absent
from an image contribute nothing. The sum is divided by the number of valid (non-void) pixels of the
batch, i.e. the loss is the pixel-weighted mean within-class variance of brightness, independent of
image size and batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_image_labels(image: torch.Tensor, labels: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    if labels.ndim != 3 or labels.shape[0] != image.shape[0] or labels.shape[1:] != image.shape[2:]:
        raise ValueError(
            f"labels must be (B, H, W) matching image {tuple(image.shape)}, got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


def semantic_brightness_loss(
    image: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255
) -> torch.Tensor:
    """Per-image semantic brightness consistency L_sc (module docstring) -> scalar.

    Args:
        image: (B, 3, H, W) enhanced images in [0, 1].
        labels: (B, H, W) integer class ids; ``ignore_index`` marks void pixels.

    Vectorised: every (image, class) pair gets one id; per-region sums and counts come from
    ``scatter_add``/``bincount``, so the cost does not grow with the number of classes.
    Returns 0 (still attached to ``image``) when no pixel is valid.
    """
    _check_image_labels(image, labels)
    brightness = image.mean(dim=1).reshape(-1)  # (B*H*W,)
    lab = labels.reshape(-1).to(torch.long)
    valid = lab != ignore_index
    if not bool(valid.any()):
        return image.sum() * 0.0
    if bool((lab[valid] < 0).any()):
        raise ValueError("labels must be >= 0 (apart from ignore_index)")
    b, _, h, w = image.shape
    img_id = torch.arange(b, device=lab.device).repeat_interleave(h * w)
    v_lab, v_img, v_bright = lab[valid], img_id[valid], brightness[valid]
    n_classes = int(v_lab.max()) + 1
    region = v_img * n_classes + v_lab
    n_regions = b * n_classes
    counts = torch.bincount(region, minlength=n_regions).to(v_bright.dtype)
    sums = torch.zeros(n_regions, dtype=v_bright.dtype, device=v_bright.device).scatter_add(
        0, region, v_bright
    )
    region_mean = sums / counts.clamp(min=1)
    return (v_bright - region_mean[region]).pow(2).sum() / v_bright.numel()


class SemanticBrightnessLoss(nn.Module):
    """Module twin of :func:`semantic_brightness_loss`."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return semantic_brightness_loss(image, labels, ignore_index=self.ignore_index)


def segmentation_ce_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255
) -> torch.Tensor:
    """Cross-entropy of a frozen segmenter's logits on the *enhanced* image vs the labels -> scalar.

    The segmenter is frozen but its input is the enhancer's output, so this term trains the
    enhancer to produce images the segmenter reads well. ``logits`` must keep their graph to the
    enhancer (the released code detached the enhanced image before segmenting, so this term carried
    no gradient there; the paper intends it to guide the enhancer).

    Args:
        logits: (B, K, h, w); resized bilinearly to the labels' (H, W) if they differ.
        labels: (B, H, W) integer class ids, ``ignore_index`` = void.

    Mean over valid pixels; 0 (attached to ``logits``) if there are none.
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, K, h, w), got {tuple(logits.shape)}")
    if labels.ndim != 3 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be (B, H, W) with B={logits.shape[0]}, got {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    labels = labels.to(torch.long)
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    n_valid = (labels != ignore_index).sum().clamp(min=1).to(total.dtype)
    return total / n_valid


class SegmentationCELoss(nn.Module):
    """Module twin of :func:`segmentation_ce_loss`."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return segmentation_ce_loss(logits, labels, ignore_index=self.ignore_index)

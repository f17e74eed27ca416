"""Batched, device-side augmentation for segmentation training.

All of a batch's random scale + crop + flip is one ``affine_grid``/``grid_sample`` call per tensor, so
the whole pipeline runs on the GPU next to the model (per-image Python loops and CPU decoding were the
bottleneck of short GPU runs). Labels are resampled with nearest neighbour; pixels that fall outside
the source image become ``ignore_index`` (and black in the image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_pair(images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(
            f"labels must be (B,H,W) = {(images.shape[0], *images.shape[-2:])}, got {tuple(labels.shape)}"
        )


def random_scale_crop_flip(
    images: torch.Tensor,
    labels: torch.Tensor,
    crop: tuple[int, int],
    *,
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale each image by s ~ U(scale_range), take a random ``crop`` (h, w) window, flip with p = 0.5.

    Args:
        images: (B,3,H,W) uint8 or float in [0,1].
        labels: (B,H,W) integer class map.
        crop: output (height, width); when the rescaled image is smaller the window extends past it and the
            outside is padding (image 0, label ``ignore_index``).
    Returns:
        float32 images (B,3,h,w) in [0,1] and long labels (B,h,w).
    """
    _check_pair(images, labels)
    b, _, h, w = images.shape
    ch, cw = crop
    dev = images.device
    gdev = generator.device if generator is not None else dev
    u = torch.rand(b, 4, generator=generator, device=gdev).to(dev)
    lo, hi = scale_range
    s = lo + (hi - lo) * u[:, 0]
    hs, ws = h * s, w * s
    # Top-left of the window in rescaled pixels: inside the image when it fits, else the image lies inside.
    oy = torch.where(hs >= ch, u[:, 1] * (hs - ch), (hs - ch) * u[:, 1])
    ox = torch.where(ws >= cw, u[:, 2] * (ws - cw), (ws - cw) * u[:, 2])
    flip = (u[:, 3] < 0.5) if hflip else torch.zeros(b, dtype=torch.bool, device=dev)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = cw / (s * w) * torch.where(flip, -1.0, 1.0)
    theta[:, 1, 1] = ch / (s * h)
    theta[:, 0, 2] = 2 * (ox + cw / 2) / ws - 1
    theta[:, 1, 2] = 2 * (oy + ch / 2) / hs - 1
    grid = F.affine_grid(theta, [b, 1, ch, cw], align_corners=False)
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)
    shifted = (labels.float() + 1.0).unsqueeze(1)  # 0 marks "outside the image" after zero padding
    lab = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    lab = lab.squeeze(1).round().long() - 1
    lab[lab < 0] = ignore_index
    return out, lab


class RandomScaleCropFlip(nn.Module):
    """Module twin of :func:`random_scale_crop_flip`."""

    def __init__(
        self,
        crop: tuple[int, int],
        scale_range: tuple[float, float] = (0.5, 2.0),
        hflip: bool = True,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.crop, self.scale_range, self.hflip, self.ignore_index = (
            tuple(crop),
            tuple(scale_range),
            hflip,
            ignore_index,
        )

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return random_scale_crop_flip(
            images,
            labels,
            self.crop,
            scale_range=self.scale_range,
            hflip=self.hflip,
            ignore_index=self.ignore_index,
            generator=generator,
        )


def random_darken(
    images: torch.Tensor,
    *,
    prob: float,
    gamma_range: tuple[float, float] = (1.5, 5.0),
    exposure_range: tuple[float, float] = (0.5, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Darken a random subset (each image with probability ``prob``) with :class:`sclle.data.darken.DarkenProtocol`.

    Optional robustness augmentation; the benchmarked prior is trained without it (the point of the
    darkness benchmark is that a normal-light segmenter fails on dark images).
    """
    if prob <= 0:
        return images
    from sclle.data.darken import DarkenProtocol

    gdev = generator.device if generator is not None else images.device
    pick = (torch.rand(images.shape[0], generator=generator, device=gdev) < prob).to(images.device)
    if not bool(pick.any()):
        return images
    protocol = DarkenProtocol(gamma_range=tuple(gamma_range), exposure_range=tuple(exposure_range))
    out = images.clone()
    out[pick] = protocol.sample(images[pick], generator)[0].to(out.dtype)
    return out

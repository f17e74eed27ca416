"""Full-reference PSNR and SSIM, calibrated against the published MATLAB values.

Both compare a distorted ``image`` with its ``reference`` (argument order as in pyiqa/torchmetrics:
prediction first). By default the [0, 1] tensors are quantised to 8 bits first (``quantize=True``),
so a result equals what MATLAB computes on the saved PNG/BMP files.

Which colour handling reproduces the official numbers (checked on the 5 TID2013 calibration pairs):

* PSNR: ``color="rgb"`` -- MSE over all three 8-bit channels, peak 255 (within 0.005 dB).
  ``"y"`` (BT.601 luma of ``rgb2ycbcr``, the super-resolution convention) gives 1.8-2.7 dB more
  on those pairs (and inf on two colour-only distortions); it is *not* what the official row used.
* SSIM: ``color="gray"`` -- Wang et al.'s ``ssim_index.m`` (11x11 Gaussian, sigma 1.5, K1 = 0.01,
  K2 = 0.03, L = 255, 'valid' filtering, mean of the map) on the 8-bit ``rgb2gray`` image, with
  *no* automatic downsampling (within 5e-5). The 2009 ``ssim.m`` downsampling by
  ``max(1, round(min(H, W) / 256))`` is available as ``downsample=True`` but moves those values by
  up to 0.11, and the Y channel by up to 0.035.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sclle.metrics._common import check_pair, gaussian_kernel1d, separable_filter
from sclle.metrics.color import rgb_to_gray255, rgb_to_y255, to_uint8_levels

Color = Literal["rgb", "y", "gray"]
_COLORS = ("rgb", "y", "gray")
_SSIM_WINDOW = 11


def _planes(x: torch.Tensor, color: str, quantize: bool) -> torch.Tensor:
    """(B, 3, H, W) [0, 1] -> (B, C, H, W) float64 on the 0..255 scale for the chosen colour handling."""
    if color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}, got {color!r}")
    if color == "gray":
        return rgb_to_gray255(x, quantize=quantize)
    if color == "y":
        return rgb_to_y255(x, quantize=quantize)
    return to_uint8_levels(x) if quantize else x.to(torch.float64) * 255.0


def psnr(
    image: torch.Tensor, reference: torch.Tensor, color: Color = "rgb", quantize: bool = True
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (peak 255) of each pair -> (B,) float64; ``inf`` for identical images.

    Args:
        image, reference: (B, 3, H, W) in [0, 1], same shape.
        color: "rgb" (default, calibrated: MSE over all channels), "y" (BT.601 luma) or "gray".
        quantize: round to 8 bits first, as MATLAB on image files (the calibrated setting).
    """
    check_pair(image, reference)
    if color == "rgb" and quantize:  # 8-bit levels: differences and squares are exact in float32
        a, b = to_uint8_levels(image, torch.float32), to_uint8_levels(reference, torch.float32)
    else:
        a, b = _planes(image, color, quantize), _planes(reference, color, quantize)
    return 10.0 * torch.log10(255.0**2 / _mse_levels(a, b))  # mse == 0 -> inf


def _mse_levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a - b).flatten(1)
    return (d * d).sum(dim=1, dtype=torch.float64) / d.shape[1]


def mse(image: torch.Tensor, reference: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Mean squared error in 8-bit levels over RGB of each pair -> (B,) float64 (``psnr``'s MSE).

    Averaged over a dataset, ``10 log10(255^2 / mean MSE)`` is the *pooled* PSNR, which stays finite when
    some outputs equal their references: the mean of per-image PSNRs is ``inf`` as soon as one does, and
    then hides how much the other images were changed (the scorecard's well-exposed column).
    """
    check_pair(image, reference)
    if quantize:
        a, b = to_uint8_levels(image, torch.float32), to_uint8_levels(reference, torch.float32)
    else:
        a, b = image.double() * 255.0, reference.double() * 255.0
    return _mse_levels(a, b)


def pooled_psnr(mse_mean: float) -> float:
    """PSNR in dB of a mean squared error in 8-bit levels (``inf`` for 0)."""
    return math.inf if mse_mean <= 0 else 10.0 * math.log10(255.0**2 / mse_mean)


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """The automatic downsampling of Wang's 2009 ``ssim.m``: f x f box filter ('symmetric'), keep every f-th."""
    h, w = x.shape[-2:]
    f = max(1, round(min(h, w) / 256))
    if f == 1:
        return x
    pre, post = (f + 1) // 2 - 1, f - (f + 1) // 2  # MATLAB's kernel centre is floor((f + 1) / 2)

    def mirror(n: int) -> torch.Tensor:
        i = torch.arange(-pre, n + post, device=x.device)
        return torch.where(i < 0, -i - 1, torch.where(i >= n, 2 * n - 1 - i, i))

    xp = x[..., mirror(h), :][..., :, mirror(w)]
    return F.avg_pool2d(xp, kernel_size=f, stride=f, ceil_mode=False)


def ssim(
    image: torch.Tensor,
    reference: torch.Tensor,
    color: Color = "gray",
    quantize: bool = True,
    downsample: bool = False,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of each pair -> (B,) float64; 1 for identical images.

    Args:
        image, reference: (B, 3, H, W) in [0, 1], same shape, at least 11x11.
        color: "gray" (default, calibrated: 8-bit ``rgb2gray``), "y" (BT.601 luma) or "rgb"
            (SSIM of each channel, averaged).
        quantize: round to 8 bits first, as MATLAB on image files (the calibrated setting).
        downsample: apply the 2009 ``ssim.m`` automatic downsampling (off: not the calibrated variant).
    """
    check_pair(image, reference)
    if min(image.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(image.shape[-2:])}")
    a, b = _planes(image, color, quantize), _planes(reference, color, quantize)
    if downsample:
        a, b = _downsample(a), _downsample(b)
    if min(a.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least 11x11 pixels after downsampling, got {tuple(a.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = gaussian_kernel1d(_SSIM_WINDOW, 1.5, device=a.device)
    n = a.shape[1]
    stats = separable_filter(torch.cat([a, b, a * a, b * b, a * b], dim=1), k, padding="valid")
    mu1, mu2, s11, s22, s12 = stats.split(n, dim=1)
    mu12, mu11, mu22 = mu1 * mu2, mu1 * mu1, mu2 * mu2
    num = (2 * mu12 + c1) * (2 * (s12 - mu12) + c2)
    den = (mu11 + mu22 + c1) * ((s11 - mu11) + (s22 - mu22) + c2)
    return (num / den).flatten(2).mean(dim=2).mean(dim=1)


class PSNR(nn.Module):
    """Module twin of :func:`psnr`: ``PSNR(color="rgb")(image, reference) -> (B,)``."""

    lower_is_better = False

    def __init__(self, color: Color = "rgb", quantize: bool = True) -> None:
        super().__init__()
        if color not in _COLORS:
            raise ValueError(f"color must be one of {_COLORS}, got {color!r}")
        self.color, self.quantize = color, quantize

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return psnr(image, reference, color=self.color, quantize=self.quantize)


class MSE(nn.Module):
    """Module twin of :func:`mse`: ``MSE()(image, reference) -> (B,)`` in 8-bit levels squared."""

    lower_is_better = True

    def __init__(self, quantize: bool = True) -> None:
        super().__init__()
        self.quantize = quantize

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return mse(image, reference, quantize=self.quantize)


class SSIM(nn.Module):
    """Module twin of :func:`ssim`: ``SSIM(color="gray")(image, reference) -> (B,)``."""

    lower_is_better = False

    def __init__(self, color: Color = "gray", quantize: bool = True, downsample: bool = False) -> None:
        super().__init__()
        if color not in _COLORS:
            raise ValueError(f"color must be one of {_COLORS}, got {color!r}")
        self.color, self.quantize, self.downsample = color, quantize, downsample

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return ssim(image, reference, color=self.color, quantize=self.quantize, downsample=self.downsample)


__all__ = ["psnr", "mse", "pooled_psnr", "ssim", "PSNR", "MSE", "SSIM"]

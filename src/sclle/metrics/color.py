"""MATLAB-compatible colour conversions: the one place sclle turns RGB into grey or luma.

The published NIQE, PIQE, SSIM, PSNR and entropy values were computed by MATLAB on 8-bit images, so
these reproduce what MATLAB sees: the [0, 1] tensor quantised to uint8 (``round(255 x)``) and
``rgb2gray`` / ``rgb2ycbcr`` rounded back to uint8. :func:`luminance` is the unquantised grey value
that other layers (brightness, luminance histograms) share, so every grey value in sclle uses the
same weights.
"""

from __future__ import annotations

import torch

#: First row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]), MATLAB ``rgb2gray``'s weights.
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
#: ITU-R BT.601 luma of MATLAB ``rgb2ycbcr`` (for R, G, B in [0, 1]; result in [16, 235]).
RGB2Y_WEIGHTS = (65.481, 128.553, 24.966)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) ``rgb2gray``-weighted sum of the channels, in ``x``'s dtype and scale."""
    wr, wg, wb = RGB2GRAY_WEIGHTS
    return x[:, 0:1] * wr + x[:, 1:2] * wg + x[:, 2:3] * wb


def to_uint8_levels(x: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Quantise a [0, 1] tensor to the integers 0..255 (as ``dtype``), as if saved as an 8-bit file.

    Rounds halves up (MATLAB's rounding; x >= 0). Done in float32 (exact for these integers, and
    half the memory traffic of float64), then cast.
    """
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return torch.floor(work * 255.0 + 0.5).to(dtype)


def rgb_to_gray255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) float64 luminance in 0..255 like MATLAB ``rgb2gray``.

    With ``quantize`` (default) the input is taken as its 8-bit image and the grey value is rounded,
    as MATLAB's ``rgb2gray`` of a uint8 image; the calibration values (NIQE, PIQE, SSIM, entropy)
    are only matched this way. Without it the conversion is done on the floats.
    """
    q = to_uint8_levels(x) if quantize else x.to(torch.float64) * 255.0
    g = luminance(q)
    return torch.floor(g + 0.5) if quantize else g  # g >= 0


def rgb_to_y255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) float64 BT.601 luma in 16..235 like MATLAB ``rgb2ycbcr``.

    ``quantize`` as in :func:`rgb_to_gray255` (uint8 in, uint8 out).
    """
    q = to_uint8_levels(x) if quantize else x.to(torch.float64) * 255.0
    wr, wg, wb = (c / 255.0 for c in RGB2Y_WEIGHTS)
    y = 16.0 + q[:, 0:1] * wr + q[:, 1:2] * wg + q[:, 2:3] * wb
    return torch.floor(y + 0.5) if quantize else y  # y >= 16


__all__ = [
    "RGB2GRAY_WEIGHTS",
    "RGB2Y_WEIGHTS",
    "luminance",
    "rgb_to_gray255",
    "rgb_to_y255",
    "to_uint8_levels",
]

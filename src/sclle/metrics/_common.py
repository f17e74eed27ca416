"""Shared helpers for the image-quality metrics: input checks and MATLAB-compatible conversions.

The published reference values of NIQE, PIQE, SSIM, PSNR and entropy were computed by MATLAB code
on 8-bit images, so the helpers here reproduce what MATLAB sees: the [0, 1] tensor quantised to
uint8 (``round(255 x)``), ``rgb2gray`` / ``rgb2ycbcr`` rounded back to uint8, and ``imresize``'s
antialiased bicubic kernel. All arithmetic is float64 (MATLAB doubles); the calibration tests
depend on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: First row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]), MATLAB ``rgb2gray``'s weights.
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
#: ITU-R BT.601 luma of MATLAB ``rgb2ycbcr`` (for R, G, B in [0, 1]; result in [16, 235]).
RGB2Y_WEIGHTS = (65.481, 128.553, 24.966)


def check_image(x: torch.Tensor, name: str = "image", min_size: int = 1) -> None:
    """Raise ValueError unless ``x`` is a float (B, 3, H, W) tensor in [0, 1].

    Checked once at the public boundary so every metric fails the same, readable way.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 and x.shape[0] == 3 else ""
        raise ValueError(f"{name} must be (B, 3, H, W) RGB, got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[-1] < min_size or x.shape[-2] < min_size:
        raise ValueError(f"{name} must be non-empty and at least {min_size}x{min_size}, got {tuple(x.shape)}")
    if x.numel() > 0:
        lo, hi = torch.aminmax(x)
        if not (lo >= 0 and hi <= 1):  # also false for NaN
            raise ValueError(
                f"{name} values must lie in [0, 1], got min {lo.item():.4g}, max {hi.item():.4g}"
            )


def check_pair(x: torch.Tensor, ref: torch.Tensor) -> None:
    """Check a distorted/reference pair: both valid images of exactly the same shape."""
    check_image(x, "image")
    check_image(ref, "reference")
    if x.shape != ref.shape:
        raise ValueError(
            f"image and reference must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}"
        )


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
    wr, wg, wb = RGB2GRAY_WEIGHTS
    g = q[:, 0:1] * wr + q[:, 1:2] * wg + q[:, 2:3] * wb
    return torch.floor(g + 0.5) if quantize else g  # g >= 0


def rgb_to_y255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) float64 BT.601 luma in 16..235 like MATLAB ``rgb2ycbcr``.

    ``quantize`` as in :func:`rgb_to_gray255` (uint8 in, uint8 out).
    """
    q = to_uint8_levels(x) if quantize else x.to(torch.float64) * 255.0
    wr, wg, wb = (c / 255.0 for c in RGB2Y_WEIGHTS)
    y = 16.0 + q[:, 0:1] * wr + q[:, 1:2] * wg + q[:, 2:3] * wb
    return torch.floor(y + 0.5) if quantize else y  # y >= 16


def gaussian_kernel1d(size: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian; the outer product with itself equals MATLAB ``fspecial('gaussian')``."""
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2.0 * sigma * sigma))
    return g / g.sum()


def separable_filter(x: torch.Tensor, k: torch.Tensor, padding: str = "replicate") -> torch.Tensor:
    """Correlate every (B, C, H, W) channel with ``outer(k, k)``.

    ``padding="replicate"`` keeps the size (MATLAB ``imfilter(..., 'replicate')``); ``"valid"``
    returns only the fully-overlapping part (MATLAB ``filter2(..., 'valid')``). Two 1-D passes of
    shifted multiply-adds: for these small kernels in float64 this is ~5x faster on CPU than
    ``conv2d`` (which has no fast float64 path) and equal up to float rounding.
    """
    n = k.numel()
    if padding == "replicate":
        lo, hi = (n - 1) // 2, n // 2
        b, c, h, w = x.shape
        x = F.pad(x.reshape(b * c, 1, h, w), (lo, hi, lo, hi), mode="replicate").reshape(b, c, h + n - 1, -1)
    elif padding != "valid":
        raise ValueError(f"padding must be 'replicate' or 'valid', got {padding!r}")
    taps = [float(t) for t in k]
    oh, ow = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"image {tuple(x.shape[-2:])} is smaller than the {n}x{n} filter")
    rows = x[..., 0:oh, :] * taps[0]
    for i in range(1, n):
        rows.add_(x[..., i : i + oh, :], alpha=taps[i])
    out = rows[..., :, 0:ow] * taps[0]
    for i in range(1, n):
        out.add_(rows[..., :, i : i + ow], alpha=taps[i])
    return out


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``imresize``'s 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _imresize_taps(
    in_len: int, out_len: int, scale: float, device: torch.device | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, each (out_len, taps), of MATLAB ``imresize``'s bicubic along one axis.

    MATLAB widens the kernel by 1/scale when shrinking (antialiasing), normalises each output
    pixel's weights to sum to 1 and mirrors out-of-range taps (symmetric boundary).
    """
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    out = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)
    u = out / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]
    dist = u[:, None] - idx
    wts = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    wts = wts / wts.sum(dim=1, keepdim=True)
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)]).to(device)
    src = mirror[torch.remainder(idx.long() - 1, 2 * in_len)]  # indices 1..n, n..1, repeated
    keep = wts.abs().sum(0) > 0  # drop all-zero taps, as MATLAB does
    return src[:, keep], wts[:, keep]


def _resize_axis(x: torch.Tensor, dim: int, out_len: int, scale: float) -> torch.Tensor:
    src, wts = _imresize_taps(x.shape[dim], out_len, scale, x.device)
    wts = wts.to(x.dtype)
    shape = [1] * x.ndim
    shape[dim] = out_len
    out = None
    for t in range(src.shape[1]):  # a few taps: gather + multiply-add, no dense matrix
        term = x.index_select(dim, src[:, t]) * wts[:, t].view(shape)
        out = term if out is None else out.add_(term)
    return out


def imresize_half(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(x, 0.5)`` (bicubic, antialiased) of a (B, C, H, W) float64 tensor (rows first)."""
    h, w = x.shape[-2:]
    y = _resize_axis(x, x.ndim - 2, math.ceil(h * 0.5), 0.5)
    return _resize_axis(y, x.ndim - 1, math.ceil(w * 0.5), 0.5)

"""Chroma keeping: bring back part of the input's colour ratios after the curves have set the brightness.

Per-channel curves lift the low channels of a pixel more than its high one, so a strong lift pales
colour: blue dusk skies turn grey-pink, a lit sky turns white (docs/results.md, session 12). A real
change of exposure scales the light, and an sRGB gain keeps the channel *ratios* (``(g R)^(1/2.2) /
(g G)^(1/2.2) = (R/G)^(1/2.2)``), so the input's ratios at the output's luminance are what a longer
exposure would have given::

    kept = x * luma(y) / max(luma(x), 1/255)        # the input's ratios at the output's luma
    keep_chroma(x, y, k) = y + k * (gamut(kept) - y)

where ``gamut`` moves a colour with a channel above 1 towards the grey of its own luma until it fits (same
luma, same hue) instead of clipping the channel, so no pixel clips that the curves left unclipped.
``k = 0`` is the curves' own output, ``k = 1`` keeps the input's colour ratios entirely (and its casts and
chroma noise with them); the bundled default's ``k`` is chosen on training pairs (docs/training.md).
Pointwise, so exact, tiled, fast and exported enhancement agree.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sclle.models.exposure import BAND_ROWS, LOG_FLOOR, LUMA


def _check_k(k: float) -> float:
    k = float(k)
    if not (math.isfinite(k) and 0.0 <= k <= 1.0):
        raise ValueError(f"chroma keeping needs 0 <= k <= 1, got {k!r}")
    return k


def _luma(t: torch.Tensor) -> torch.Tensor:
    return t[:, 0:1] * LUMA[0] + t[:, 1:2] * LUMA[1] + t[:, 2:3] * LUMA[2]


def keep_chroma(x: torch.Tensor, y: torch.Tensor, k: float) -> torch.Tensor:
    """``y`` with a fraction ``k`` of ``x``'s channel ratios restored at ``y``'s luminance (module docstring).

    ``x`` and ``y`` are (B, 3, H, W) in [0, 1]: the input and its enhanced image. Differentiable.
    """
    k = _check_k(k)
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"keep_chroma needs two (B, 3, H, W) images of one shape, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")  # fmt: skip
    if k == 0.0:
        return y
    luma_y = _luma(y)
    kept = _gamut(x * (luma_y / _luma(x).clamp_min(LOG_FLOOR)), luma_y)
    return (y + k * (kept - y)).clamp(0.0, 1.0)


def _gamut(kept: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """``kept`` moved towards ``luma`` (its grey) just enough that no channel exceeds 1."""
    over = kept.amax(1, keepdim=True) - luma
    t = ((1.0 - luma).clamp_min(0.0) / over.clamp_min(1e-6)).clamp_max(1.0)
    return luma + (kept - luma) * t


@torch.no_grad()
def keep_chroma_(x: torch.Tensor, y: torch.Tensor, k: float, rows: int = BAND_ROWS) -> torch.Tensor:
    """:func:`keep_chroma` written into ``y`` band by band (temporaries of one band of rows), for inference."""
    k = _check_k(k)
    if k == 0.0:
        return y
    for xb, yb in zip(torch.split(x, rows, dim=2), torch.split(y, rows, dim=2), strict=True):
        luma_y = _luma(yb)
        kept = _gamut(xb * (luma_y / _luma(xb).clamp_min_(LOG_FLOOR)), luma_y)
        yb.lerp_(kept, k).clamp_(0.0, 1.0)
    return y


class KeepChroma(nn.Module):
    """Module twin of :func:`keep_chroma` (``k`` is a plain attribute, not a weight)."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = _check_k(k)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return keep_chroma(x, y, self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}"

"""Colour cast: a tint over the whole picture, which PSNR and (grey) SSIM barely see.

``cast(image, reference)`` is the distance, in CIELAB units, between the mean chroma ``(a*, b*)`` of
``image`` and that of ``reference``: 0 when the output's overall colour balance is the reference's, about
2.3 at the just-noticeable difference, 5-10 for a cast anyone sees (a green dusk sky, a yellow veil).
Lightness (L*) is left out on purpose: how bright an enhancer makes the picture is what PSNR measures.
The conversion is scikit-image's ``rgb2lab`` (sRGB, D65), so the numbers are those of that library.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import rgb2lab
from torch import nn

from sclle.metrics._common import check_pair


def mean_chroma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 2) float64 mean ``(a*, b*)`` of each image (sRGB, D65)."""
    arr = x.detach().to("cpu", torch.float64).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(np.stack([rgb2lab(im)[..., 1:].mean(axis=(0, 1)) for im in arr]))


def cast(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) float64: length of the shift of the mean CIELAB chroma from ``reference`` to ``image``."""
    check_pair(image, reference)
    shift = mean_chroma(image) - mean_chroma(reference)  # on the CPU (scikit-image)
    return torch.linalg.vector_norm(shift, dim=1).to(image.device)


class Cast(nn.Module):
    """Module twin of :func:`cast`."""

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return cast(image, reference)

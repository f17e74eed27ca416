"""Image entropy as MATLAB ``entropy(rgb2gray(I))``: Shannon entropy in bits of the 8-bit grey histogram.

A cheap no-reference cue for low-light enhancement (a dark image uses few grey levels); higher means
the tones are spread over more levels. It says nothing about noise or colour, so pair it with NIQE.
"""

from __future__ import annotations

import torch
from torch import nn

from sclle.metrics._common import check_image
from sclle.metrics.color import rgb_to_gray255


@torch.no_grad()
def entropy(image: torch.Tensor) -> torch.Tensor:
    """Entropy (bits, 0..8) of each image's 256-bin grey histogram: (B, 3, H, W) [0, 1] -> (B,) float64."""
    check_image(image)
    gray = rgb_to_gray255(image).flatten(1).long()  # (B, H*W), values 0..255
    b, n = gray.shape
    offsets = torch.arange(b, device=gray.device).unsqueeze(1) * 256
    hist = torch.bincount((gray + offsets).flatten(), minlength=b * 256).reshape(b, 256)
    p = hist.to(torch.float64) / n
    terms = torch.where(p > 0, -p * torch.log2(p.clamp_min(1e-300)), torch.zeros_like(p))
    return terms.sum(dim=1)


class Entropy(nn.Module):
    """Module twin of :func:`entropy`."""

    lower_is_better = False

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return entropy(image)


__all__ = ["entropy", "Entropy"]

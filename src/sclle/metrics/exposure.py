"""Exposure faults a full-reference score hides: highlights an enhancer newly blows out.

``clipped(image, reference)``: the fraction of pixels that are white-clipped in ``image`` (any channel
at the 8-bit maximum) but not in ``reference``. On a well-exposed photo fed to an enhancer (reference =
the input) it measures how much of the picture the enhancer burnt; 0 is best.
"""

from __future__ import annotations

import torch
from torch import nn

from sclle.metrics._common import check_pair

#: A channel counts as clipped when it rounds to 255 in 8 bits.
CLIP_LEVEL = 254.5 / 255.0


def clipped(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) float64: fraction of pixels clipped in ``image`` and not in ``reference``."""
    check_pair(image, reference)
    new = (image >= CLIP_LEVEL).any(dim=1) & ~(reference >= CLIP_LEVEL).any(dim=1)
    return new.flatten(1).double().mean(dim=1)


class Clipped(nn.Module):
    """Module twin of :func:`clipped`."""

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return clipped(image, reference)

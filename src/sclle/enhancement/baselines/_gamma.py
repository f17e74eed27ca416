"""Gamma correction: the global power law ``x ** gamma``, the simplest brightening baseline."""

from __future__ import annotations

import math

import torch
from torch import nn

from sclle.core.checks import check_image


def gamma_correction(x: torch.Tensor, *, gamma: float = 1.0 / 2.2) -> torch.Tensor:
    """Global power law ``x ** gamma``; ``gamma < 1`` brightens.

    The default ``1/2.2`` is the classic display-gamma encoding: it lifts shadows strongly while
    keeping black and white fixed. Unlike the other baselines this stays on the input's device
    and is differentiable.
    """
    check_image(x, "gamma_correction")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma_correction: gamma must be a positive finite number, got {gamma}")
    return x.to(torch.float32).clamp(0.0, 1.0).pow(gamma)


class GammaCorrection(nn.Module):
    """Module twin of :func:`gamma_correction`."""

    def __init__(self, gamma: float = 1.0 / 2.2) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gamma_correction(x, gamma=self.gamma)

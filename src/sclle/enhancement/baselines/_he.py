"""Histogram equalisation of the luma channel only (OpenCV YCrCb ``Y``), so hue is kept."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from sclle.core.checks import check_image
from sclle.enhancement.baselines._common import per_image, to_uint8


def _he_image(img: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.equalizeHist(ycc[..., 0])
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB).astype(np.float64) / 255.0


def histogram_equalization(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of the luma channel (8-bit YCrCb ``Y``, OpenCV ``equalizeHist``).

    Equalising only luma and keeping Cr/Cb avoids the colour shifts of per-channel HE. The result
    is quantised to 8 bits, like every 8-bit HE.
    """
    check_image(x, "histogram_equalization")
    return per_image(x, _he_image)


class HistogramEqualization(nn.Module):
    """Module twin of :func:`histogram_equalization`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return histogram_equalization(x)

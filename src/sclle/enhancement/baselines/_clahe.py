"""CLAHE: contrast-limited adaptive histogram equalisation (Zuiderveld 1994) of Lab ``L`` (OpenCV)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import nn

from sclle.core.checks import check_image
from sclle.enhancement.baselines._common import per_image, to_uint8


def clahe(x: torch.Tensor, *, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """Contrast-limited adaptive HE (Zuiderveld 1994) of the 8-bit Lab ``L`` channel (OpenCV).

    Args:
        clip_limit: OpenCV's ``clipLimit`` (histogram clip, relative to the mean bin count).
        tile_grid: (rows, cols) of contextual tiles, OpenCV's ``tileGridSize``.
    """
    check_image(x, "clahe")
    if not (math.isfinite(clip_limit) and clip_limit > 0):
        raise ValueError(f"clahe: clip_limit must be positive, got {clip_limit}")
    if len(tile_grid) != 2 or min(tile_grid) < 1:
        raise ValueError(f"clahe: tile_grid must be two positive ints, got {tile_grid}")
    grid = (int(tile_grid[1]), int(tile_grid[0]))  # OpenCV wants (width, height)

    def one(img: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2Lab)
        # A fresh object per image: CLAHE objects keep state and are not thread-safe.
        lab[..., 0] = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=grid).apply(lab[..., 0])
        return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB).astype(np.float64) / 255.0

    return per_image(x, one)


class CLAHE(nn.Module):
    """Module twin of :func:`clahe`."""

    def __init__(self, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> None:
        super().__init__()
        self.clip_limit = clip_limit
        self.tile_grid = tile_grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return clahe(x, clip_limit=self.clip_limit, tile_grid=self.tile_grid)

"""What every classical baseline shares: running a numpy image function over a torch batch.

The OpenCV/SciPy recipes work on one (H, W, 3) float64 image at a time on the CPU; :func:`per_image`
is the one boundary between that and the (B, 3, H, W) float32 tensors the rest of sclle passes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def per_image(x: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply a numpy (H, W, 3) float64 -> (H, W, 3) float function to each image of the batch.

    The result is clipped to [0, 1], float32, on ``x``'s device.
    """
    images = x.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
    out = [np.clip(fn(np.ascontiguousarray(img)), 0.0, 1.0).astype(np.float32) for img in images]
    if not out:
        return torch.empty(x.shape, dtype=torch.float32, device=x.device)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(x.device)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 by rounding (the 8-bit domain the OpenCV equalisers are defined on)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

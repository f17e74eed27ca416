"""Boundary checks shared by the image operations (one tensor convention: float (B, 3, H, W) in [0, 1])."""

from __future__ import annotations

import torch


def check_image(x: torch.Tensor, name: str) -> None:
    """Raise ValueError unless ``x`` is a finite float (B, 3, H, W) tensor in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected a (B, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        return
    x = x.detach()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: input contains NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: expected values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")

"""Validation during training: NIQE and mean brightness of the enhanced held-out images (rank 0).

The images are read and downscaled once; a missing folder or an unavailable NIQE degrades to a
warning (brightness only, or no validation), never a failed run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from sclle import imageio
from sclle.losses.contrastive import mean_brightness
from sclle.models.base import downscale
from sclle.models.dce import DCENet
from sclle.train.config import TrainConfig


class Validator:
    """NIQE and mean brightness of the enhanced held-out images (rank 0 only)."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.images: list[torch.Tensor] = []
        self.niqe = None
        self.device = device
        d = cfg.data
        if not d.val_dir:
            return
        folder = Path(d.val_dir)
        if not folder.is_dir():
            warnings.warn(f"validation folder {folder} not found; validation skipped", stacklevel=2)
            return
        files = sorted(p for p in folder.iterdir() if p.is_file() and imageio.is_supported(p))[
            : d.val_max_images
        ]
        for p in files:
            x = imageio.to_tensor(imageio.read_image(p).rgb)
            s = d.val_max_side / max(x.shape[-2:])
            if s < 1:
                x = downscale(x, s).clamp(0, 1)
            self.images.append(x)
        try:
            from sclle.metrics import create  # type: ignore[attr-defined]

            self.niqe = create("niqe")
        except Exception as exc:  # metric not available in this build: brightness only
            warnings.warn(
                f"NIQE unavailable ({type(exc).__name__}: {exc}); validation reports brightness only",
                stacklevel=2,
            )
            self.niqe = None

    def __bool__(self) -> bool:
        return bool(self.images)

    @torch.no_grad()
    def __call__(self, net: DCENet) -> dict[str, float]:
        was_training = net.training
        net.eval()
        niqe, bright = [], []
        for x in self.images:
            y = net.enhance(x.to(self.device)).float().clamp(0, 1)
            bright.append(float(mean_brightness(y).mean()))
            if self.niqe is not None:
                try:
                    niqe.append(float(torch.as_tensor(self.niqe(y.cpu())).float().mean()))
                except Exception as exc:
                    warnings.warn(f"NIQE failed ({type(exc).__name__}: {exc}); disabled", stacklevel=2)
                    self.niqe = None
        net.train(was_training)
        out = {"brightness": float(np.mean(bright))}
        if niqe:
            out["niqe"] = float(np.mean(niqe))
        return out

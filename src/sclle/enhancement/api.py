"""``sclle.enhance()`` and ``sclle.load_model()``: the Python API the CLI is a shell over."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sclle.core.device import resolve_device
from sclle.enhancement.engine import Engine, EngineConfig
from sclle.errors import SclleError
from sclle.models.base import Enhancer
from sclle.models.registry import WeightsEntry, load_weights

#: ``fast_scale``, the one spelling of fast mode: None = exact, a float in (0, 1] = that scale,
#: "auto" = the scale recommended in the model's metadata.
FastScale = float | Literal["auto"] | None


def load_model(
    name_or_path: str | Path | None = None,
    *,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> Enhancer:
    """Load an enhancer by registry name (``sclle.list_models()``) or from a weights file.

    ``None`` is the bundled default model. Weights are hash-checked, must be finite, and subnormals
    are flushed. Any registered architecture comes back as an :class:`~sclle.models.base.Enhancer`.
    """
    net, _ = load_weights(name_or_path, weights=weights, download=download)
    return net.to(device)


@functools.lru_cache(maxsize=8)
def _cached_model(name: str | None, weights: str | None) -> tuple[Enhancer, WeightsEntry | None]:
    return load_weights(name, weights=weights)


def resolve_fast_scale(fast_scale: FastScale, entry: WeightsEntry | None) -> float | None:
    if fast_scale is None:
        return None
    if fast_scale == "auto":
        return entry.fast_scale if entry is not None else 0.5
    if isinstance(fast_scale, bool) or not isinstance(fast_scale, (int, float)):
        raise ValueError(f"fast_scale must be None, 'auto' or a number in (0, 1], got {fast_scale!r}")
    return float(fast_scale)


def build_engine(
    model: str | Path | Enhancer | None = None,
    *,
    weights: str | Path | None = None,
    strength: float = 1.0,
    fast_scale: FastScale = None,
    tile: int | None = None,
    precision: str = "fp32",
    device: str = "auto",
) -> Engine:
    """Build (once) the engine that :func:`enhance` and the CLI use; see :class:`EngineConfig`."""
    entry = None
    if isinstance(model, Enhancer):
        net = model  # the Engine works on its own copy: the caller's network is never changed
    else:
        net, entry = _cached_model(
            None if model is None else str(model), None if weights is None else str(weights)
        )
    dev = resolve_device(device)
    try:
        cfg = EngineConfig(
            strength=strength,
            fast_scale=resolve_fast_scale(fast_scale, entry),
            tile=tile,
            precision=precision,
        )
        return Engine(net, cfg, dev, entry=entry)
    except ValueError as exc:  # an option out of range, or a mode the architecture does not support
        raise SclleError(str(exc)) from None


def enhance(
    image: Any,
    model: str | Path | Enhancer | None = None,
    *,
    weights: str | Path | None = None,
    strength: float = 1.0,
    fast_scale: FastScale = None,
    tile: int | None = None,
    precision: str = "fp32",
    device: str = "auto",
) -> Any:
    """Enhance one image and return it in the same kind it came in.

    ``image`` may be a path (returns a PIL image), a PIL image (same mode back: L stays L, RGBA
    keeps its alpha, 16-bit stays 16-bit), a numpy array HxW / HxWx3 / HxWx4 of uint8, uint16 or
    float in [0, 1] (same dtype back), or a float tensor (B, 3, H, W) in [0, 1] (same device and
    dtype back; NaN or values outside [0, 1] are refused, as for numpy). ``model`` is a registry name,
    a weights file or an :class:`~sclle.models.base.Enhancer` (never modified). ``fast_scale``: None
    (exact), ``"auto"`` (the model's recommended scale) or a number in (0, 1]. ``precision``: fp32,
    bf16, fp16 or auto (reduced precision only where it keeps >= 60 dB PSNR against fp32).
    """
    from sclle import imageio

    engine = build_engine(
        model, weights=weights, strength=strength, fast_scale=fast_scale, tile=tile,
        precision=precision, device=device,
    )  # fmt: skip
    if isinstance(image, torch.Tensor):
        return engine(image)
    if isinstance(image, (str, Path)):
        img = imageio.read_image(image)
        out = engine(imageio.to_tensor(img.rgb))
        return imageio.to_pil(img, imageio.from_tensor(out))
    if isinstance(image, np.ndarray):
        img = imageio.from_array(image)
        out = engine(imageio.to_tensor(img.rgb))
        return imageio.to_array(img, imageio.from_tensor(out))
    from PIL import Image as PILImage

    if isinstance(image, PILImage.Image):
        img = imageio.from_pil(image)
        out = engine(imageio.to_tensor(img.rgb))
        return imageio.to_pil(img, imageio.from_tensor(out))
    raise TypeError(
        f"cannot enhance a {type(image).__name__}; pass a path, PIL image, numpy array or (B,3,H,W) tensor"
    )

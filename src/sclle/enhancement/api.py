"""``sclle.enhance()`` and ``sclle.load_model()``: the Python API the CLI is a shell over."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from sclle.enhancement.engine import Engine, EngineConfig, pick_device
from sclle.models.dce import DCENet
from sclle.models.registry import WeightsEntry, load_weights

T = TypeVar("T")


def load_model(
    name_or_path: str | Path | None = None,
    *,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> DCENet:
    """Load an enhancer by registry name (``sclle.list_models()``) or from a weights file.

    ``None`` is the bundled default model. Weights are hash-checked and subnormals flushed.
    """
    net, _ = load_weights(name_or_path, weights=weights, download=download)
    return net.to(device)


@functools.lru_cache(maxsize=8)
def _cached_model(name: str | None, weights: str | None) -> tuple[DCENet, WeightsEntry | None]:
    return load_weights(name, weights=weights)


def build_engine(
    model: str | Path | DCENet | None = None,
    *,
    weights: str | Path | None = None,
    strength: float = 1.0,
    fast: bool | float = False,
    tile: int | None = None,
    device: str = "auto",
) -> Engine:
    """Build (once) the engine that :func:`enhance` and the CLI use.

    ``fast=True`` uses the model's recommended scale (metadata ``fast_scale``, 0.5 for the
    released weights); a float picks the scale.
    """
    entry = None
    if isinstance(model, DCENet):
        net = model
    else:
        net, entry = _cached_model(
            None if model is None else str(model), None if weights is None else str(weights)
        )
    if fast is True:
        scale: float | None = entry.fast_scale if entry is not None else 0.5
    elif fast is False or fast is None:
        scale = None
    else:
        scale = float(fast)
    cfg = EngineConfig(strength=strength, fast_scale=scale, tile=tile)
    dev = pick_device(device)
    if dev.type != "cpu" and not isinstance(model, DCENet):
        net = copy.deepcopy(net)  # Engine moves the net; keep the cached CPU copy where it is
    return Engine(net, cfg, dev)


def enhance(
    image: Any,
    model: str | Path | DCENet | None = None,
    *,
    weights: str | Path | None = None,
    strength: float = 1.0,
    fast: bool | float = False,
    tile: int | None = None,
    device: str = "auto",
) -> Any:
    """Enhance one image and return it in the same kind it came in.

    ``image`` may be a path (returns a PIL image), a PIL image (same mode back: L stays L, RGBA
    keeps its alpha, 16-bit stays 16-bit), a numpy array HxW / HxWx3 / HxWx4 of uint8, uint16 or
    float in [0, 1] (same dtype back), or a float tensor (B, 3, H, W) in [0, 1] (same device and
    dtype back).
    """
    from sclle import io

    engine = build_engine(model, weights=weights, strength=strength, fast=fast, tile=tile, device=device)
    if isinstance(image, torch.Tensor):
        return engine(image)
    if isinstance(image, (str, Path)):
        img = io.read_image(image)
        out = engine(io.to_tensor(img.rgb))
        return io.to_pil(img, io.from_tensor(out))
    if isinstance(image, np.ndarray):
        img = io.from_array(image)
        out = engine(io.to_tensor(img.rgb))
        return io.to_array(img, io.from_tensor(out))
    try:
        from PIL import Image as PILImage
    except ImportError:  # pragma: no cover - pillow is a dependency
        PILImage = None
    if PILImage is not None and isinstance(image, PILImage.Image):
        img = io.from_pil(image)
        out = engine(io.to_tensor(img.rgb))
        return io.to_pil(img, io.from_tensor(out))
    raise TypeError(
        f"cannot enhance a {type(image).__name__}; pass a path, PIL image, numpy array or (B,3,H,W) tensor"
    )

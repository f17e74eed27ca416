"""The one enhancer interface every architecture implements.

Every enhancer is two pieces: ``params = net(x)`` (curve maps, or an illumination map) and
``net.apply(x, params, strength=...)``. Every engine mode (exact, fast, tiled, export) reuses those two
pieces instead of re-implementing a network, and asks the class what it supports:

* ``family``: ``"curves"`` (LE-curves ``x <- x + r (x^2 - x)``: DCE-Net, Zero-DCE++) or ``"retinex"``
  (``y = x / i`` with an illumination ``i``: SCI, RUAS);
* ``receptive_radius``: pixels of context one output pixel depends on; tiling uses a halo at least this big;
* ``native_scale``: the resolution the released model runs its network at (``None`` = full resolution;
  Zero-DCE++: 1/12); the engine's default ("exact", the released arithmetic) uses it;
* ``supports_fast``: whether params estimated on a downscaled copy can be upsampled and applied
  (true for curve maps, which are smooth; false where the apply step holds a full-resolution network).

``strength`` scales the effect without cross-fading two images: curves multiply their maps by it
(clipped to [-1, 1], where each step stays monotonic); Retinex models divide by ``i ** strength``
(0 = identity, 1 = the model, in between a lower exposure of the same illumination).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sclle.core.weights import (
    NEGLIGIBLE_WEIGHT,
    WeightsEntry,
    flush_subnormals_,
    load_entry_state_dict,
    load_into,
)
from sclle.errors import WeightsError


def downscale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The copy a low-resolution estimate sees (bilinear with antialiasing, size rounded)."""
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class Enhancer(nn.Module):
    """Base class of every enhancement network; see the module docstring."""

    family: ClassVar[str] = "curves"
    receptive_radius: ClassVar[int] = 0
    supports_fast: ClassVar[bool] = False
    #: Name of the architecture in the registry (``sclle models`` shows it).
    arch: ClassVar[str] = ""
    native_scale: float | None = None
    #: Curve family: how many times each 3-channel map is applied (Zero-DCE++ applies one map 8 times).
    curve_repeats: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` for inference without autograd; a subclass may trade memory for nothing here.

        The engine calls this, training calls ``forward``; both give the same params (within float rounding).
        """
        return self(x)

    def image_strength(self, x: torch.Tensor) -> torch.Tensor | None:
        """A per-image strength (B,) the model chooses from the whole input, or None (always 1).

        The engine asks for it once per image, before tiling, and multiplies the user's strength by it.
        """
        return None

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The pointwise step :meth:`apply` runs after the curves (may write into ``y``); identity here.

        Paths that apply the curves themselves (the engine's fused fast mode) call it on their output.
        """
        return y

    def enhance(self, x: torch.Tensor, *, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The released arithmetic: params at the native scale, applied at full resolution."""
        auto = self.image_strength(x)
        if auto is not None:
            strength = strength * auto.view(-1, 1, 1, 1)
        if self.native_scale is not None and self.native_scale < 1.0:
            return self.apply(x, self.params_at_scale(x, self.native_scale), strength=strength)
        return self.apply(x, self(x), strength=strength)

    # Resampling conventions: subclasses that were released with other ones override these.
    def downscale(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        return downscale(x, scale)

    #: ``align_corners`` of :meth:`upsample` (the banded fast path needs to know it).
    upsample_align_corners: ClassVar[bool] = False

    def upsample(self, params: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(params, size=size, mode="bilinear", align_corners=self.upsample_align_corners)

    def params_at_scale(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """Params estimated on a ``scale``-downscaled copy, upsampled to ``x``'s size."""
        if scale >= 1.0:
            return self(x)
        return self.upsample(self(self.downscale(x, scale)), tuple(x.shape[-2:]))


def scale_curves(curves: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
    """Curve maps at ``strength`` (1 = unchanged; a (B, 1, 1, 1) tensor: one per image), clipped to [-1, 1]."""
    if isinstance(strength, torch.Tensor):
        return (curves * strength).clamp(-1.0, 1.0)
    return curves if strength == 1.0 else (curves * strength).clamp(-1.0, 1.0)


def apply_le_curves(image: torch.Tensor, maps: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """Apply LE-curves ``x <- x + r_k (x^2 - x)`` for each 3-channel map ``r_k`` in ``maps`` (B, 3k, H, W).

    The released weights use this sign convention (a *negative* ``r`` brightens); the paper writes
    ``x + A x (1 - x)``. A single 3-channel map with ``iterations`` > 1 is Zero-DCE++'s shared curve.
    """
    x = image
    for r in torch.split(maps, 3, dim=1):
        x = x + r * (x * x - x)
    return x.clamp(0.0, 1.0) if clamp else x


def retinex_divide(x: torch.Tensor, illumination: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
    """``clamp(x / i ** strength, 0, 1)``: Retinex-style enhancement at a given strength."""
    i = illumination if strength == 1.0 else illumination.pow(strength)
    return (x / i).clamp(0.0, 1.0)


def build(
    cls: type[Enhancer],
    weights: WeightsEntry | None,
    *,
    progress: bool = True,
    path: str | Path | None = None,
    **kwargs: Any,
) -> Enhancer:
    """What every torchvision-style builder does: construct, then (if ``weights``) load the entry's file.

    The file is resolved and hash-checked by :mod:`sclle.core.weights`, loaded ``strict`` (the whole reason
    in one line when it does not fit), subnormal and negligible weights are flushed (bit-identical output, no slow path).
    """
    net = cls(**{**(dict(weights.arch_kwargs) if weights is not None else {}), **kwargs})
    if weights is not None:
        if weights.arch and weights.arch != cls.arch:
            raise WeightsError(f"weights {weights.name!r} are for {weights.arch!r}, not {cls.arch!r}")
        sd, source = load_entry_state_dict(weights, path=path, progress=progress)
        load_state(net, sd, source)
    return net.eval()


def load_state(net: Enhancer, state_dict: dict[str, torch.Tensor], source: str | Path) -> Enhancer:
    """Strict load into ``net`` and flush subnormal and negligible weights (shared by builders and plain
    weights files)."""
    load_into(net, state_dict, source, net.arch or type(net).__name__)
    flush_subnormals_(net, below=NEGLIGIBLE_WEIGHT)
    return net

"""Seeded synthetic darkening: low-light inputs made from normal-light images.

Real low-light/normal-light pairs are scarce, so full-reference scores (PSNR, SSIM against the
original) and some training runs darken well-exposed images instead. The model is a camera-like
chain on [0, 1] RGB:

1. tone: ``y = exposure * x ** gamma`` -- ``gamma > 1`` crushes shadows more than highlights (the
   SCL-LLE paper darkens its segmentation benchmark with ``x ** gamma``, gamma in {1, 2, 6, 10}:
   :func:`gamma_darken`), ``exposure < 1`` scales the whole signal down;
2. optional sensor noise (:class:`NoiseModel`): Poisson shot noise with ``peak`` photons at white plus
   Gaussian read noise, ``y <- Poisson(peak * y) / peak + N(0, read_std^2)``, clipped to [0, 1].

Randomness only comes from an explicit ``torch.Generator``, so a darkened set is reproducible;
:func:`darken_seeded` derives one generator per image from ``(seed, index)`` so an image gets the same
darkening whatever batch it is in and in whatever order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sclle.core.checks import check_image

__all__ = [
    "Darken",
    "DarkenParams",
    "DarkenProtocol",
    "GammaDarken",
    "NoiseModel",
    "PAPER_GAMMAS",
    "RandomDarken",
    "darken",
    "darken_seeded",
    "gamma_darken",
    "image_generator",
]

#: The darkness levels of the SCL-LLE paper's segmentation benchmark (``x ** gamma``).
PAPER_GAMMAS: tuple[float, ...] = (1.0, 2.0, 6.0, 10.0)

Scalar = float | torch.Tensor


def _per_image_param(value: Scalar, x: torch.Tensor, name: str) -> torch.Tensor:
    """A positive scalar or a (B,) tensor of per-image values -> (B or 1, 1, 1, 1) tensor like ``x``."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.reshape(1)
    if t.ndim != 1 or t.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"{name} must be a number or a ({x.shape[0]},) tensor, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return t.reshape(-1, 1, 1, 1)


@dataclass(frozen=True)
class NoiseModel:
    """Poisson-Gaussian sensor noise.

    Attributes:
        peak: expected photon count at white (``y = 1``); lower is noisier (shot-noise SNR at level
            ``y`` is ``sqrt(peak * y)``).
        read_std: standard deviation of the additive Gaussian read noise, in [0, 1] units.
    """

    peak: float
    read_std: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.peak) and self.peak > 0):
            raise ValueError(f"NoiseModel.peak must be positive and finite, got {self.peak}")
        if not (math.isfinite(self.read_std) and self.read_std >= 0):
            raise ValueError(f"NoiseModel.read_std must be >= 0, got {self.read_std}")


def _add_noise(y: torch.Tensor, noise: NoiseModel, generator: torch.Generator | None) -> torch.Tensor:
    # Draw on the generator's device (CPU generators give the same numbers everywhere), then move.
    dev = generator.device if generator is not None else y.device
    lam = (y.detach() * noise.peak).to(dev)
    out = torch.poisson(lam, generator=generator) / noise.peak
    if noise.read_std > 0:
        out = out + noise.read_std * torch.randn(lam.shape, generator=generator, dtype=lam.dtype, device=dev)
    return out.to(y.device).clamp(0.0, 1.0)


def gamma_darken(x: torch.Tensor, gamma: Scalar) -> torch.Tensor:
    """``x ** gamma``: the SCL-LLE paper's darkening for its segmentation benchmark (see
    :data:`PAPER_GAMMAS`). ``gamma`` is a number or a (B,) tensor, one per image. Differentiable;
    keeps the input's dtype."""
    check_image(x, "gamma_darken")
    return x.pow(_per_image_param(gamma, x, "gamma"))


def darken(
    x: torch.Tensor,
    *,
    gamma: Scalar = 1.0,
    exposure: Scalar = 1.0,
    noise: NoiseModel | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``y = clip(exposure * x ** gamma)`` then optional Poisson-Gaussian ``noise``.

    Args:
        x: (B, 3, H, W) in [0, 1].
        gamma, exposure: positive numbers or (B,) tensors (one value per image).
        noise: sensor noise to add, or None for a noise-free (and differentiable) darkening.
        generator: source of the noise; with the same generator state the result is identical.
            Without one the global RNG is used.
    Returns:
        Same shape and dtype as ``x``, in [0, 1].
    """
    check_image(x, "darken")
    g = _per_image_param(gamma, x, "gamma")
    e = _per_image_param(exposure, x, "exposure")
    y = (e * x.pow(g)).clamp(0.0, 1.0)
    if noise is not None:
        y = _add_noise(y, noise, generator)
    return y


@dataclass(frozen=True)
class DarkenParams:
    """The per-image parameters a :class:`DarkenProtocol` drew, each a (B,) float64 tensor."""

    gamma: torch.Tensor
    exposure: torch.Tensor


def _check_range(r: tuple[float, float], name: str) -> None:
    if len(r) != 2 or not all(math.isfinite(v) for v in r) or not (0 < r[0] <= r[1]):
        raise ValueError(f"DarkenProtocol.{name} must be (low, high) with 0 < low <= high, got {r}")


@dataclass(frozen=True)
class DarkenProtocol:
    """Random darkening for training and evaluation sets.

    Per image, ``gamma`` and ``exposure`` are drawn **log-uniformly** from their ranges (both act
    multiplicatively, so each factor of darkening is equally likely), then :func:`darken` is applied
    with ``noise``. Draw order from the generator: all gammas, all exposures, then the noise.
    A range with ``low == high`` fixes the value.
    """

    gamma_range: tuple[float, float] = (2.0, 5.0)
    exposure_range: tuple[float, float] = (0.3, 1.0)
    noise: NoiseModel | None = None

    def __post_init__(self) -> None:
        _check_range(self.gamma_range, "gamma_range")
        _check_range(self.exposure_range, "exposure_range")

    @staticmethod
    def _log_uniform(r: tuple[float, float], n: int, generator: torch.Generator | None) -> torch.Tensor:
        dev = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=dev).cpu()
        lo, hi = math.log(r[0]), math.log(r[1])
        return torch.exp(lo + u * (hi - lo))

    def sample(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DarkenParams]:
        """Darken a (B, 3, H, W) batch with freshly drawn parameters; returns ``(y, params)``."""
        check_image(x, "DarkenProtocol.sample")
        b = x.shape[0]
        params = DarkenParams(
            gamma=self._log_uniform(self.gamma_range, b, generator),
            exposure=self._log_uniform(self.exposure_range, b, generator),
        )
        y = darken(x, gamma=params.gamma, exposure=params.exposure, noise=self.noise, generator=generator)
        return y, params


def image_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, index)`` with NumPy's SeedSequence mixing, so nearby
    seeds or indices give unrelated streams."""
    for v, name in ((seed, "seed"), (index, "index")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed((int(state[0]) << 31) ^ int(state[1]))


def darken_seeded(
    x: torch.Tensor, protocol: DarkenProtocol, seed: int, index: int | Sequence[int]
) -> tuple[torch.Tensor, DarkenParams]:
    """Darken each image with its own generator from ``(seed, index)``: reproducible per image.

    Args:
        x: (B, 3, H, W) in [0, 1].
        index: the dataset index of each image: an int when ``B == 1``, else a sequence of B ints.
    Returns:
        ``(y, params)`` as :meth:`DarkenProtocol.sample`; image ``i`` depends only on
        ``(x[i], seed, index[i])``, not on the batch it came in.
    """
    check_image(x, "darken_seeded")
    b = x.shape[0]
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        indices = [int(index)]
    elif isinstance(index, torch.Tensor):
        indices = [int(i) for i in index.reshape(-1).tolist()]
    else:
        indices = [i for i in index]
    if len(indices) != b:
        raise ValueError(f"darken_seeded: got {len(indices)} indices for a batch of {b} images")
    ys, gammas, exposures = [], [], []
    for i, idx in enumerate(indices):
        y, p = protocol.sample(x[i : i + 1], generator=image_generator(seed, idx))
        ys.append(y)
        gammas.append(p.gamma)
        exposures.append(p.exposure)
    if not ys:
        empty = torch.empty(0, dtype=torch.float64)
        return x.clone(), DarkenParams(gamma=empty, exposure=empty.clone())
    return torch.cat(ys), DarkenParams(gamma=torch.cat(gammas), exposure=torch.cat(exposures))


class Darken(nn.Module):
    """Module twin of :func:`darken` with fixed parameters."""

    def __init__(self, gamma: float = 1.0, exposure: float = 1.0, noise: NoiseModel | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.exposure = exposure
        self.noise = noise

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return darken(x, gamma=self.gamma, exposure=self.exposure, noise=self.noise, generator=generator)


class GammaDarken(nn.Module):
    """Module twin of :func:`gamma_darken`."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gamma_darken(x, self.gamma)


class RandomDarken(nn.Module):
    """Module twin of :meth:`DarkenProtocol.sample` that returns only the darkened batch."""

    def __init__(self, protocol: DarkenProtocol | None = None) -> None:
        super().__init__()
        self.protocol = protocol if protocol is not None else DarkenProtocol()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.protocol.sample(x, generator)[0]

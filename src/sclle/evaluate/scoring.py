"""What the evaluation measures on each output: the metrics (by name, from :mod:`sclle.metrics`),
mean brightness, and the luminance histogram and thumbnail the report draws.

Metrics come from :func:`sclle.metrics.create` and :func:`sclle.metrics.list_metrics`; the only one
defined here is ``brightness`` (the paper's "mean brightness" column), used while the metrics registry
has no metric of that name.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sclle.errors import SclleError
from sclle.evaluate.results import MetricSpec
from sclle.metrics import luminance as gray_level

DEFAULT_NR_METRICS = ("niqe", "piqe", "entropy", "brightness")
DEFAULT_FR_METRICS = ("psnr", "ssim")
THUMB_SIZE = 256
HIST_BINS = 256


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H, W) luminance in [0, 1]: :func:`sclle.metrics.luminance` (``rgb2gray``
    weights), so brightness and the histograms see the grey value the metrics see."""
    return gray_level(x)[:, 0]


def brightness(x: torch.Tensor) -> torch.Tensor:
    """Mean luminance of each image, (B,) in [0, 1]: the "mean brightness" column of the paper's Table 1.

    Neither higher nor lower is better: it shows how far a method lifts the exposure, which
    puts NIQE/PIQE in context (an over-brightened image can still score well on them).
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"brightness expects (B, 3, H, W), got {tuple(x.shape)}")
    return luminance(x.to(torch.float64)).mean(dim=(-2, -1))


class Brightness(nn.Module):
    """Module twin of :func:`brightness` (used when the metrics registry has no ``brightness``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return brightness(x)


def resolve_metrics(names: Sequence[str] | None) -> tuple[list[MetricSpec], dict[str, nn.Module]]:
    """Metric columns and modules for ``names`` (None = the paper's defaults that are available).

    ``brightness`` is built in when the registry lacks it. Unknown names raise a
    :class:`SclleError` listing the known ones; with the defaults, a metric missing from the
    registry is dropped with a warning instead (so a partial install still evaluates).
    """
    from sclle.metrics import create, list_metrics

    registry = {info.name: info for info in list_metrics()}
    explicit = names is not None
    wanted = list(names) if names is not None else [*DEFAULT_NR_METRICS, *DEFAULT_FR_METRICS]
    specs: list[MetricSpec] = []
    modules: dict[str, nn.Module] = {}
    for name in dict.fromkeys(n.strip() for n in wanted if n.strip()):
        info = registry.get(name)
        if info is None and name == "brightness":
            specs.append(MetricSpec("brightness", "nr", None))
            modules[name] = Brightness()
            continue
        if info is None and not name.startswith("pyiqa:"):
            if explicit:
                known = ", ".join(sorted({*registry, "brightness"}))
                raise SclleError(f"unknown metric {name!r}; known: {known}")
            warnings.warn(f"metric {name!r} is not available; left out of the report", stacklevel=2)
            continue
        module = create(name)
        spec = MetricSpec.of(name, info if info is not None else module)  # pyiqa: the module describes itself
        if spec.kind not in ("nr", "fr"):
            raise SclleError(
                f"metric {name!r} is a {spec.kind!r} metric; sclle evaluate scores images (nr/fr) only"
            )
        specs.append(spec)
        modules[name] = module
    if not specs:
        raise SclleError("no metrics to compute")
    return specs, modules


def luminance_histogram(x: torch.Tensor) -> np.ndarray:
    """Normalised :data:`HIST_BINS`-bin histogram of the 8-bit luminance of a (1, 3, H, W) image."""
    g = torch.round(luminance(x.to(torch.float32)).clamp(0, 1) * 255).to(torch.int64).flatten()
    h = torch.bincount(g.cpu(), minlength=HIST_BINS).to(torch.float64)
    return (h / h.sum()).numpy().astype(np.float32)


def thumbnail_png(x: torch.Tensor, size: int = THUMB_SIZE) -> bytes:
    """PNG of a (1, 3, H, W) image shrunk to fit ``size`` px (a contact-sheet tile)."""
    from PIL import Image

    rgb = (x[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    im = Image.fromarray(rgb)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()

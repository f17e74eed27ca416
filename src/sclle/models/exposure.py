"""Adaptive exposure: a per-image curve strength from the input's log-mean luminance.

A curve network trained without references brightens every input by a similar amount: it under-lifts
very dark photos and over-lifts well-exposed ones (docs/results.md). The curves' *shape* is good, their
*strength* does not follow how dark the input is. :class:`ExposureControl` scales the curve maps of a
whole image by::

    s = clamp(a + b * log_mean_luminance(x) + c * log_highlight_luminance(x)
              + d * log_luminance_spread(x), lo, hi)

0 leaves a bright photo alone, values above 1 lift a very dark one further; the highlight term tells a
dusk scene with a lit sky from an evenly under-exposed one. The spread term (the standard deviation of
log luminance) tells *how* an image was darkened: ``e * x**g`` multiplies the spread by ``g``, so a
bright scene darkened hard is wider in log luminance than a dim scene darkened a little to the same
mean, and needs more lift (docs/results.md, session 9). The numbers are fitted on training data only
(``scripts/fit_exposure.py``) and live in the weights entry (``arch_kwargs``), so the weights file stays a
plain DCE-Net ``state_dict``.

The statistic is taken over the *whole* image at full resolution, before any tiling, so tiled, fast and
exported enhancement use the same strength. The user's ``strength`` multiplies it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Rec. 601 luma weights (what ``cv2.COLOR_RGB2GRAY`` and MATLAB's ``rgb2gray`` use).
LUMA = (0.299, 0.587, 0.114)
#: Luminance floor of the log (one 8-bit step): black pixels do not send the mean to -inf.
LOG_FLOOR = 1.0 / 255.0
#: Largest curve strength. The scaled maps are clipped to [-1, 1], so a strength above 1 lifts only the
#: pixels whose maps are still below 1 in magnitude: the darkest photos keep gaining up to ~2.5 (fitted on
#: SICE training frames, docs/training.md), and at 4 the maps of a trained net are saturated everywhere.
MAX_STRENGTH = 4.0
#: Rows per band when summing the log: bounds the temporaries to one band (~12 MB at 8000 px wide).
BAND_ROWS = 128


def _bands(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Row bands of ``x``; the whole tensor while exporting (a band count would freeze the height)."""
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return (x,)
    return torch.split(x, BAND_ROWS, dim=2)


def _luma(band: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of a (B, 3, h, W) band -> (B, h, W), without a 3-channel product temporary."""
    r, g, b = band.unbind(1)
    return (r * LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2])


#: Centre of the log-luminance range [log(1/255), 0]: the second moment is summed about it, so that the
#: variance ``E[(l - k)^2] - (E[l] - k)^2`` does not lose digits to cancellation in float32.
_LOG_CENTRE = math.log(LOG_FLOOR) / 2


def luminance_stats(
    x: torch.Tensor, p: int = 4, spread: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All statistics of :func:`adaptive_strength` in one pass over ``x``: (log-mean, log-highlight,
    log-spread), (B,) each; the spread is zeros unless ``spread`` (it costs one more pass over each band).

    One luma per band serves every sum, and ``luma**4`` is two squarings (``pow`` is slower); this pass was
    a sixth of fast mode's time per image before (BENCHMARKS.md).
    """
    if p != 4:
        raise ValueError(f"only the power mean p=4 is implemented, got {p}")
    log_total = x.new_zeros(x.shape[0])
    sq_total = x.new_zeros(x.shape[0])
    p_total = x.new_zeros(x.shape[0])
    grad = torch.is_grad_enabled() and x.requires_grad  # in-place steps only where autograd needs nothing
    for band in _bands(x):
        luma = _luma(band)
        log = luma.clamp_min(LOG_FLOOR)
        log = log.log() if grad else log.log_()
        log_total = log_total + log.sum(dim=(1, 2))
        if spread:  # the log is a temporary of ours once summed: centred and squared in place
            centred = (log - _LOG_CENTRE).square() if grad else log.sub_(_LOG_CENTRE).square_()
            sq_total = sq_total + centred.sum(dim=(1, 2))
        luma4 = luma.clamp_min(0.0).square().square() if grad else luma.clamp_min_(0.0).square_().square_()
        p_total = p_total + luma4.sum(dim=(1, 2))
    n = x.shape[-2] * x.shape[-1]
    log_mean = log_total / n
    log_high = (p_total / n).clamp_min(LOG_FLOOR**p).log() / p
    if not spread:
        return log_mean, log_high, torch.zeros_like(log_mean)
    var = (sq_total / n - (log_mean - _LOG_CENTRE).square()).clamp_min(0.0)
    return log_mean, log_high, var.sqrt()


def log_mean_luminance(x: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of ``log(max(luma, 1/255))`` of each image in ``x`` (B, 3, H, W) -> (B,)."""
    total = x.new_zeros(x.shape[0])
    for band in _bands(x):
        total = total + _luma(band).clamp_min_(LOG_FLOOR).log_().sum(dim=(1, 2))
    return total / (x.shape[-2] * x.shape[-1])


def log_highlight_luminance(x: torch.Tensor, p: float = 4.0) -> torch.Tensor:
    """``log`` of the power mean ``mean(luma**p) ** (1/p)`` of each image (B,): how bright its highlights are.

    A dusk street with a lit sky and an evenly under-exposed room can share a log-mean; their highlights differ.
    """
    total = x.new_zeros(x.shape[0])
    for band in _bands(x):
        total = total + _luma(band).clamp_min_(0.0).pow_(p).sum(dim=(1, 2))
    mean = total / (x.shape[-2] * x.shape[-1])
    return mean.clamp_min(LOG_FLOOR**p).log() / p


def log_luminance_spread(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation over pixels of ``log(max(luma, 1/255))`` of each image (B,).

    Darkening ``e * x**g`` multiplies it by ``g`` and leaves it alone under a plain gain ``e``.
    """
    return luminance_stats(x)[2]


def adaptive_strength(
    x: torch.Tensor, a: float, b: float, lo: float = 0.0, hi: float = 1.5, c: float = 0.0, d: float = 0.0
) -> torch.Tensor:
    """``clamp(a + b * log_mean + c * log_highlights + d * log_spread, lo, hi)`` -> (B,): each image's strength."""
    if c == 0.0 and d == 0.0:
        return (a + b * log_mean_luminance(x)).clamp(lo, hi)
    log_mean, log_high, spread = luminance_stats(x, spread=d != 0.0)
    s = a + b * log_mean + c * log_high
    if d != 0.0:  # the spread's sqrt has no finite gradient on a flat image: only taken when used
        s = s + d * spread
    return s.clamp(lo, hi)


class ExposureControl(nn.Module):
    """Module twin of :func:`adaptive_strength` (its numbers are plain attributes, not weights).

    ``b <= 0`` and ``c <= 0``: a brighter image is never lifted more; ``d >= 0``: a wider one (darkened with a
    stronger gamma) never less.
    """

    def __init__(
        self, a: float, b: float, lo: float = 0.0, hi: float = 1.5, c: float = 0.0, d: float = 0.0
    ) -> None:
        super().__init__()
        if not (b <= 0.0 and c <= 0.0 and d >= 0.0 and 0.0 <= lo <= hi <= MAX_STRENGTH):
            raise ValueError(
                f"exposure control needs b <= 0, c <= 0, d >= 0 and 0 <= lo <= hi <= {MAX_STRENGTH:g}, "
                f"got {a=}, {b=}, {c=}, {d=}, {lo=}, {hi=}"
            )
        self.a, self.b, self.c, self.d = float(a), float(b), float(c), float(d)
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_strength(x, self.a, self.b, self.lo, self.hi, self.c, self.d)

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, c={self.c}, d={self.d}, lo={self.lo}, hi={self.hi}"

    def config(self) -> dict[str, float]:
        """The ``arch_kwargs["exposure"]`` of the weights entry (``d`` only when used: older entries lack it)."""
        out = {"a": self.a, "b": self.b, "c": self.c, "lo": self.lo, "hi": self.hi}
        return {**out, "d": self.d} if self.d else out

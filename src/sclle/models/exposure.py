"""Adaptive exposure: a per-image curve strength from the input's log-mean luminance.

A curve network trained without references brightens every input by a similar amount: it under-lifts
very dark photos and over-lifts well-exposed ones (docs/results.md). The curves' *shape* is good, their
*strength* does not follow how dark the input is. :class:`ExposureControl` scales the curve maps of a
whole image by::

    s = clamp(a + b * log_mean_luminance(x) + c * log_highlight_luminance(x)
              + d * log_luminance_spread(x) + e * chroma_spread(x) + f * mean_saturation(x), lo, hi)

0 leaves a bright photo alone, values above 1 lift a very dark one further; the highlight term tells a
dusk scene with a lit sky from an evenly under-exposed one. The spread term (the standard deviation of
log luminance) tells *how* an image was darkened: ``e * x**g`` multiplies the spread by ``g``, so a
bright scene darkened hard is wider in log luminance than a dim scene darkened a little to the same
mean, and needs more lift (docs/results.md, session 9). The two colour terms read the same thing from the
chroma: a gamma applied per channel raises each channel ratio to the power ``g``, so it widens the spread of
log chroma, while the mean saturation of a scene says how colourful it was to start with; luminance alone
leaves a dim dusk frame darkened a little and a bright street darkened hard with one mean (session 11).
The numbers are fitted on training data only
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


#: Pixels darker than this luma carry no colour worth reading (sensor noise, the log floor): left out of
#: the colour statistics.
COLOUR_MIN_LUMA = 4.0 / 255.0
#: The colour statistics read every ``COLOUR_STRIDE``-th row and column: a mean and a variance over a
#: quarter of the pixels of a photo are the same to the third digit, at a quarter of the cost.
COLOUR_STRIDE = 2


def colour_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(chroma spread, mean saturation) of each image in ``x`` (B, 3, H, W) -> (B,) each.

    Over the pixels with luma >= :data:`COLOUR_MIN_LUMA` (on a stride-:data:`COLOUR_STRIDE` grid): the
    chroma spread is ``sqrt(var(log(r/g)) + var(log(b/g)))`` (channels floored at 1/255), and the saturation
    is the mean of ``(max - min) / max`` over the channels. An image with no such pixel gets 0 for both.
    A gain leaves both alone (above the floors); a gamma ``g`` multiplies the chroma spread by ``g``.
    """
    sub = x[..., ::COLOUR_STRIDE, ::COLOUR_STRIDE]
    zeros = sub.new_zeros(sub.shape[0])
    n, su, sv, suu, svv, ssat = zeros, zeros, zeros, zeros, zeros, zeros
    for band in _bands(sub):
        mask = (_luma(band) >= COLOUR_MIN_LUMA).to(band.dtype)
        ch = band.clamp_min(LOG_FLOOR).log()
        u, v = ch[:, 0] - ch[:, 1], ch[:, 2] - ch[:, 1]  # log(r/g), log(b/g)
        hi, lo = band.amax(dim=1), band.amin(dim=1)
        sat = (hi - lo) / hi.clamp_min(LOG_FLOOR)
        n = n + mask.sum(dim=(1, 2))
        su, sv = su + (u * mask).sum(dim=(1, 2)), sv + (v * mask).sum(dim=(1, 2))
        suu, svv = suu + (u * u * mask).sum(dim=(1, 2)), svv + (v * v * mask).sum(dim=(1, 2))
        ssat = ssat + (sat * mask).sum(dim=(1, 2))
    m = n.clamp_min(1.0)
    var = (suu / m - (su / m).square()).clamp_min(0.0) + (svv / m - (sv / m).square()).clamp_min(0.0)
    # sqrt(0) has no finite gradient: a grey image's spread is 0 through a tiny offset, not a NaN
    return (var + 1e-12).sqrt() - 1e-6, ssat / m


def chroma_spread(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(var(log(r/g)) + var(log(b/g)))`` of each image's coloured pixels (B,), see :func:`colour_stats`."""
    return colour_stats(x)[0]


def mean_saturation(x: torch.Tensor) -> torch.Tensor:
    """Mean ``(max - min) / max`` over the channels of each image's coloured pixels (B,), see :func:`colour_stats`."""
    return colour_stats(x)[1]


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
    x: torch.Tensor,
    a: float,
    b: float,
    lo: float = 0.0,
    hi: float = 1.5,
    c: float = 0.0,
    d: float = 0.0,
    e: float = 0.0,
    f: float = 0.0,
) -> torch.Tensor:
    """``clamp(a + b * log_mean + c * log_highlights + d * log_spread + e * chroma_spread + f * saturation,
    lo, hi)`` -> (B,): each image's strength (a term whose weight is 0 is not computed)."""
    if c == 0.0 and d == 0.0 and e == 0.0 and f == 0.0:
        return (a + b * log_mean_luminance(x)).clamp(lo, hi)
    log_mean, log_high, spread = luminance_stats(x, spread=d != 0.0)
    s = a + b * log_mean + c * log_high
    if d != 0.0:  # the spread's sqrt has no finite gradient on a flat image: only taken when used
        s = s + d * spread
    if e != 0.0 or f != 0.0:
        chroma, saturation = colour_stats(x)
        s = s + e * chroma + f * saturation
    return s.clamp(lo, hi)


class ExposureControl(nn.Module):
    """Module twin of :func:`adaptive_strength` (its numbers are plain attributes, not weights).

    ``b <= 0`` and ``c <= 0``: a brighter image is never lifted more; ``d >= 0``: a wider one (darkened with a
    stronger gamma) never less. The colour weights ``e`` and ``f`` may take either sign (they are fitted).
    """

    def __init__(
        self,
        a: float,
        b: float,
        lo: float = 0.0,
        hi: float = 1.5,
        c: float = 0.0,
        d: float = 0.0,
        e: float = 0.0,
        f: float = 0.0,
    ) -> None:
        super().__init__()
        values = (a, b, c, d, e, f, lo, hi)
        if not (
            all(math.isfinite(float(v)) for v in values)
            and b <= 0.0 and c <= 0.0 and d >= 0.0 and 0.0 <= lo <= hi <= MAX_STRENGTH
        ):  # fmt: skip
            raise ValueError(
                f"exposure control needs finite numbers with b <= 0, c <= 0, d >= 0 and "
                f"0 <= lo <= hi <= {MAX_STRENGTH:g}, got {a=}, {b=}, {c=}, {d=}, {e=}, {f=}, {lo=}, {hi=}"
            )
        self.a, self.b, self.c, self.d = float(a), float(b), float(c), float(d)
        self.e, self.f = float(e), float(f)
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_strength(x, self.a, self.b, self.lo, self.hi, self.c, self.d, self.e, self.f)

    def extra_repr(self) -> str:
        return (
            f"a={self.a}, b={self.b}, c={self.c}, d={self.d}, e={self.e}, f={self.f}, "
            f"lo={self.lo}, hi={self.hi}"
        )

    def config(self) -> dict[str, float]:
        """The ``arch_kwargs["exposure"]`` of the weights entry (``d``, ``e``, ``f`` only when used: older
        entries lack them)."""
        out = {"a": self.a, "b": self.b, "c": self.c, "lo": self.lo, "hi": self.hi}
        out.update({k: v for k, v in (("d", self.d), ("e", self.e), ("f", self.f)) if v})
        return out

"""Is a lead on the scorecard bigger than the noise of its image sample? Paired bootstrap intervals.

A scorecard column is a mean over 20-100 images, so a 0.004 SSIM lead can flip on another sample of the same
protocol (docs/results.md, session 9: it did). :func:`paired_margin` resamples the *images* (the same images
for both methods, since they are paired) with :func:`scipy.stats.bootstrap` and returns the difference of the
two means with its bootstrap interval; a lead whose interval excludes 0 is one this sample supports. The
well-exposed column is a pooled PSNR, so its statistic is the difference of pooled PSNRs,
``10 log10(mean MSE_ref / mean MSE_method)``. Intervals are BCa (scipy's default; the percentile interval
where BCa is undefined). Fewer than :data:`FEW_IMAGES` images make any interval rough: reports flag them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: Resamples per interval: the percentile ends move by well under 1 % of the interval between seeds.
N_RESAMPLES = 2000
LEVEL = 0.95
#: Below this many images an interval is marked as resting on few images (LIME has 9 or 10).
FEW_IMAGES = 20


@dataclass(frozen=True)
class Margin:
    """``method - reference`` on one column (``delta``), its bootstrap interval, and the images it rests on."""

    delta: float
    lo: float
    hi: float
    n: int
    lower_is_better: bool = False

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` when the whole interval says so, ``within noise`` when it holds 0, else ``n/a``."""
        if any(math.isnan(v) for v in (self.delta, self.lo, self.hi)) or math.isinf(self.delta):
            return "n/a"  # an infinite *end* is fine (e.g. resamples of an almost-identity); a point is not
        if self.lo > 0 or self.hi < 0:
            up = self.lo > 0
            return "better" if up != self.lower_is_better else "worse"
        return "within noise"

    def as_dict(self) -> dict:
        """JSON-ready: NaN is ``None``, an infinite value the string ``"inf"`` / ``"-inf"``."""

        def js(v: float) -> float | str | None:
            return None if math.isnan(v) else (v if math.isfinite(v) else ("inf" if v > 0 else "-inf"))

        return {
            "delta": js(self.delta),
            "lo": js(self.lo),
            "hi": js(self.hi),
            "n": self.n,
            "verdict": self.verdict,
        }

    def scaled(self, k: float) -> Margin:
        """The same margin in other units (e.g. mIoU fractions as points: ``k = 100``)."""
        return Margin(k * self.delta, k * self.lo, k * self.hi, self.n, self.lower_is_better)


def _interval(data: tuple, stat, n_resamples: int, seed: int, **kw) -> tuple[float, float]:
    """95 % bootstrap interval of ``stat``: BCa (better coverage on small samples than the percentile
    interval), the percentile interval where BCa is undefined (e.g. a statistic that is constant in the
    jackknife). Seeded."""
    import warnings

    from scipy.stats import bootstrap

    def run(method: str) -> tuple[float, float]:
        gen = np.random.default_rng(seed)
        rng = {"rng": gen} if "rng" in inspect.signature(bootstrap).parameters else {"random_state": gen}
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # degenerate-data and inf-subtraction warnings: handled below
            ci = bootstrap(data, stat, vectorized=True, n_resamples=n_resamples, confidence_level=LEVEL,
                           method=method, **rng, **kw).confidence_interval  # fmt: skip
        return float(ci.low), float(ci.high)

    lo, hi = run("BCa")
    return (lo, hi) if not (math.isnan(lo) or math.isnan(hi)) else run("percentile")


def _miou_difference_of(a: np.ndarray, b: np.ndarray):
    """The vectorised bootstrap statistic of :func:`miou_margin`: resampled image indices -> mIoU difference."""

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.moveaxis(np.asarray(idx), axis, -1).astype(np.intp)  # (..., n) resampled image indices
        return _miou(a[idx].sum(-3)) - _miou(b[idx].sum(-3))

    return stat


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _pooled_psnr_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.mean(b, axis=axis) / np.mean(a, axis=axis))


def paired_margin(
    method: Mapping[str, float],
    reference: Mapping[str, float],
    *,
    lower_is_better: bool = False,
    pooled_psnr: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Margin:
    """Difference of means (``method - reference``) over the images both scored, with a 95 % paired interval.

    ``method`` / ``reference`` map image keys to per-image scores; images either lacks, or scored NaN, are
    left out. With ``pooled_psnr`` the scores are per-image MSEs and the statistic is the difference of pooled
    PSNRs (``inf`` when one side is the identity: then the verdict is ``n/a``). Seeded: the same inputs give
    the same interval.
    """
    keys = sorted(
        k for k in method.keys() & reference.keys() if not (np.isnan(method[k]) or np.isnan(reference[k]))
    )
    if len(keys) < 2:
        return Margin(math.nan, math.nan, math.nan, len(keys), lower_is_better)
    a = np.array([method[k] for k in keys], dtype=np.float64)
    b = np.array([reference[k] for k in keys], dtype=np.float64)
    stat = _pooled_psnr_difference if pooled_psnr else _mean_difference
    delta = float(stat(a, b))
    if not (np.isfinite(a).all() and np.isfinite(b).all() and math.isfinite(delta)):
        return Margin(delta, math.nan, math.nan, len(keys), lower_is_better)
    if np.array_equal(a, b):  # the bootstrap of a constant is degenerate: the interval is the point
        return Margin(0.0, 0.0, 0.0, len(keys), lower_is_better)
    lo, hi = _interval((a, b), stat, n_resamples, seed, paired=True)
    return Margin(delta, lo, hi, len(keys), lower_is_better)


def _miou(cms: np.ndarray) -> np.ndarray:
    """mIoU of (..., C, C) confusion matrices, as :func:`sclle.metrics.miou_from_confusion` (nanmean of IoU)."""
    tp = np.diagonal(cms, axis1=-2, axis2=-1).astype(np.float64)
    union = cms.sum(-1) + cms.sum(-2) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        return np.nanmean(iou, axis=-1)


def miou_margin(
    method: np.ndarray,
    reference: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Margin:
    """mIoU of ``method`` minus that of ``reference`` with a 95 % paired bootstrap interval over the images.

    mIoU is a dataset-level score (summed confusion counts, not a mean over images), so the images are
    resampled and each resample's per-image (C, C) confusion matrices, ``method[i]`` / ``reference[i]``
    (N, C, C) for the same image ``i``, are summed before the IoU. In the units of the inputs' mIoU (0-1).
    """
    a, b = np.asarray(method), np.asarray(reference)
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"expected two (N, C, C) stacks of confusion matrices, got {a.shape} and {b.shape}")
    n = a.shape[0]
    delta = float(_miou(a.sum(0)) - _miou(b.sum(0))) if n else math.nan
    if n < 2 or not math.isfinite(delta):
        return Margin(delta, math.nan, math.nan, n)
    if np.array_equal(a, b):
        return Margin(0.0, 0.0, 0.0, n)

    lo, hi = _interval((np.arange(n),), _miou_difference_of(a, b), n_resamples, seed, batch=200)
    return Margin(delta, lo, hi, n)

"""Paired bootstrap margins (sclle.evaluate.margins) and the scorecard's ``--against`` tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sclle.evaluate.margins import Margin, paired_margin


def _scores(values) -> dict[str, float]:
    return {f"img{i:03d}": float(v) for i, v in enumerate(values)}


def test_a_clear_lead_is_better_and_its_direction_follows_the_metric():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.7, 0.05, 64)
    ahead = _scores(ref + 0.01 + rng.normal(0, 0.002, 64))
    m = paired_margin(ahead, _scores(ref))
    assert m.n == 64 and m.lo > 0 and m.hi < 0.02 and m.lo < m.delta < m.hi
    assert m.verdict == "better"
    assert paired_margin(ahead, _scores(ref), lower_is_better=True).verdict == "worse"  # e.g. NIQE going up


def test_a_lead_smaller_than_the_images_noise_is_within_noise_and_seeded():
    rng = np.random.default_rng(1)
    ref = rng.normal(0.7, 0.05, 20)
    noisy = _scores(ref + 0.002 + rng.normal(0, 0.03, 20))
    m = paired_margin(noisy, _scores(ref))
    assert m.lo < 0 < m.hi and m.verdict == "within noise"
    assert paired_margin(noisy, _scores(ref)) == m  # same seed, same interval
    assert paired_margin(noisy, _scores(ref), seed=5) != m


def test_only_images_both_scored_count_and_degenerate_cases():
    a = {"x": 1.0, "y": 2.0, "z": math.nan, "only_a": 9.0}
    b = {"x": 0.5, "y": 1.5, "z": 1.0, "only_b": -9.0}
    m = paired_margin(a, b)
    assert (
        m.n == 2 and m.delta == pytest.approx(0.5) and m.lo == pytest.approx(0.5)
    )  # the NaN and strays left out
    same = paired_margin(_scores([0.3, 0.4, 0.5]), _scores([0.3, 0.4, 0.5]))
    assert (same.delta, same.lo, same.hi, same.verdict) == (0.0, 0.0, 0.0, "within noise")
    one = paired_margin({"x": 1.0}, {"x": 0.0})
    assert one.n == 1 and math.isnan(one.delta) and one.verdict == "n/a"


def test_pooled_psnr_margin_is_the_ratio_of_mean_errors():
    rng = np.random.default_rng(2)
    mse = rng.uniform(10, 50, 30)
    m = paired_margin(_scores(mse), _scores(1.2 * mse), pooled_psnr=True)  # 1.2x the error everywhere
    assert m.delta == pytest.approx(10 * math.log10(1.2))
    assert m.lo == pytest.approx(m.delta) and m.hi == pytest.approx(m.delta)
    assert m.verdict == "better"
    identity = paired_margin(_scores(np.zeros(30)), _scores(mse), pooled_psnr=True)
    assert identity.delta == math.inf and identity.verdict == "n/a"
    assert identity.as_dict() == {"delta": "inf", "lo": None, "hi": None, "n": 30, "verdict": "n/a"}
    almost = _scores(np.r_[np.zeros(28), mse[:2]])  # left alone on 28 of 30 images: some resamples are inf
    m = paired_margin(almost, _scores(mse), pooled_psnr=True)
    assert math.isfinite(m.delta) and m.lo > 0 and m.verdict == "better"  # an infinite end is still an end


def test_verdict_needs_the_whole_interval():
    assert Margin(0.5, 0.1, 0.9, 10).verdict == "better"
    assert Margin(-0.5, -0.9, -0.1, 10, lower_is_better=True).verdict == "better"
    assert Margin(0.5, -0.1, 0.9, 10).verdict == "within noise"
    assert Margin(-0.5, -0.9, -0.1, 10).verdict == "worse"


def test_miou_bootstrap_statistic_sums_confusions_over_the_resampled_images():
    from sclle.evaluate.margins import _miou, _miou_difference_of, miou_margin

    rng = np.random.default_rng(3)
    a = rng.integers(0, 40, (12, 4, 4))
    b = rng.integers(0, 40, (12, 4, 4))
    idx = rng.integers(0, 12, (7, 12))  # 7 resamples of 12 images, as scipy hands them over
    got = _miou_difference_of(a, b)(idx)
    want = [_miou(a[i].sum(0)) - _miou(b[i].sum(0)) for i in idx]
    assert got.shape == (7,) and np.allclose(got, want)
    m = miou_margin(a, b)
    assert m.n == 12 and m.delta == pytest.approx(_miou(a.sum(0)) - _miou(b.sum(0)))
    assert m.lo <= m.delta <= m.hi
    assert m.scaled(100).delta == pytest.approx(100 * m.delta)
    with pytest.raises(ValueError, match="confusion"):
        miou_margin(a, b[:, :3, :3])

"""Fitting the adaptive exposure to a strength sweep (sclle.train.exposure_fit)."""

from __future__ import annotations

import numpy as np
import pytest

from sclle.models.exposure import MAX_STRENGTH, ExposureControl
from sclle.train.exposure_fit import fit, strengths_to

A0, B0 = -0.5, -0.5  # the rule the synthetic sweep is built from (c = 0: the highlights do not matter)


def _rows(strengths: np.ndarray, n: int = 24) -> list[dict]:
    """Pairs whose best strength is exactly ``A0 + B0 * logmean`` (on the sweep's grid), scores peaked there."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        logmean = -1.2 - 0.2 * (i % 20)  # best strength 0.1 .. 2.0
        best = A0 + B0 * logmean
        d = strengths - best
        rows.append({
            "kind": ("sice", "camvid_dark", "camvid_normal")[i % 3],
            "logmean": logmean,
            "loghigh": float(rng.uniform(-1.5, -0.1)),
            "psnr": (30.0 - 10.0 * d**2).tolist(),
            "ssim": (0.9 - 0.1 * d**2).tolist(),
        })  # fmt: skip
    return rows


def test_strengths_grid_and_limit():
    s = strengths_to(2.5)
    assert s[0] == 0.0 and s[-1] == 2.5 and len(s) == 26
    assert strengths_to(MAX_STRENGTH)[-1] == MAX_STRENGTH
    with pytest.raises(ValueError, match="max_strength"):
        strengths_to(MAX_STRENGTH + 0.5)


def test_fit_recovers_the_rule_the_sweep_was_built_from():
    s = strengths_to(2.5)
    out = fit(_rows(s), s, hi=2.5)
    assert out["exposure"] == {"a": A0, "b": B0, "c": 0.0, "lo": 0.0, "hi": 2.5}
    assert out["at_edge"] == []
    assert out["with_fit"]["sice"]["psnr"] == pytest.approx(30.0)
    assert out["with_fit"]["sice"]["psnr"] > out["at_strength_1"]["sice"]["psnr"]
    ExposureControl(**out["exposure"])  # a valid model setting


def test_the_cap_binds_and_an_edge_is_reported():
    s = strengths_to(2.5)
    capped = fit(_rows(s), s, hi=1.0)
    assert capped["exposure"]["hi"] == 1.0
    assert capped["with_fit"]["sice"]["psnr"] < 30.0  # rows that wanted more than 1 lose
    narrow = fit(_rows(s), s, hi=2.5, a_min=-0.2)  # the true a (-0.5) is outside the grid
    assert "a" in narrow["at_edge"]


def test_refuses_a_cap_the_sweep_does_not_reach_and_mismatched_rows():
    s = strengths_to(2.0)
    with pytest.raises(ValueError, match="sweep further"):
        fit(_rows(s), s, hi=2.5)
    with pytest.raises(ValueError, match="strengths"):
        fit(_rows(strengths_to(2.5)), s, hi=1.5)


def test_a_niqe_term_moves_the_fit_toward_more_natural_outputs():
    s = strengths_to(2.5)
    rows = _rows(s)
    for r in rows:  # NIQE falls with strength: a naturalness term that wants more lift than PSNR does
        r["niqe"] = (5.0 - 1.0 * s).tolist()
    plain = fit(rows, s, hi=2.5)
    assert plain["exposure"]["a"] == A0 and plain["niqe_weight"] == 0.0
    assert plain["with_fit"]["sice"]["niqe"] == pytest.approx(
        float(np.mean([5.0 - (A0 + B0 * r["logmean"]) for r in rows if r["kind"] == "sice"])), abs=1e-3
    )
    pulled = fit(rows, s, hi=2.5, niqe_weight=20.0)
    assert pulled["exposure"]["a"] > A0  # lifts more
    assert pulled["with_fit"]["sice"]["niqe"] < plain["with_fit"]["sice"]["niqe"]
    assert pulled["with_fit"]["sice"]["psnr"] < plain["with_fit"]["sice"]["psnr"]


def test_a_niqe_weight_needs_niqe_rows():
    s = strengths_to(2.5)
    with pytest.raises(ValueError, match="NIQE"):
        fit(_rows(s), s, hi=2.5, niqe_weight=1.0)
    with pytest.raises(ValueError, match="niqe_weight"):
        fit(_rows(s), s, hi=2.5, niqe_weight=-1.0)


def test_unused_or_bad_niqe_never_steers_the_fit():
    s = strengths_to(2.5)
    rows = _rows(s)
    for r in rows:
        r["niqe"] = [float("nan")] * len(s)  # e.g. NIQE undefined on a tiny or flat output
    assert fit(rows, s, hi=2.5)["exposure"]["a"] == A0  # weight 0: the NaNs are ignored
    with pytest.raises(ValueError, match="not finite"):
        fit(rows, s, hi=2.5, niqe_weight=1.0)


def test_fit_recovers_a_spread_weight_and_needs_the_spread():
    s = strengths_to(2.5)
    rows = _rows(s)
    rng = np.random.default_rng(1)
    for r in rows:  # best strength now also grows with the log-luminance spread
        r["logstd"] = float(rng.uniform(0.2, 1.2))
        best = A0 + B0 * r["logmean"] + 0.5 * r["logstd"]
        d = s - best
        r["psnr"], r["ssim"] = (30.0 - 10.0 * d**2).tolist(), (0.9 - 0.1 * d**2).tolist()
    out = fit(rows, s, hi=2.5, d_max=1.0)
    assert out["exposure"] == {"a": A0, "b": B0, "c": 0.0, "d": 0.5, "lo": 0.0, "hi": 2.5}
    assert out["with_fit"]["sice"]["psnr"] == pytest.approx(30.0, abs=0.05)  # linear between swept strengths
    without = fit(rows, s, hi=2.5)  # d_max 0: the old rule, which cannot fit these rows as well
    assert (
        "d" not in without["exposure"]
        and without["with_fit"]["sice"]["psnr"] < out["with_fit"]["sice"]["psnr"] - 0.1
    )
    ExposureControl(**out["exposure"])
    for r in rows:
        del r["logstd"]
    with pytest.raises(ValueError, match="spread"):
        fit(rows, s, hi=2.5, d_max=1.0)
    with pytest.raises(ValueError, match="d_max"):
        fit(rows, s, hi=2.5, d_max=-1.0)


def test_the_real_pairs_weight_pulls_the_fit_toward_them():
    s = strengths_to(2.5)
    rows = _rows(s)
    for r in rows:  # the real pairs want 0.5 more strength than the synthetic ones
        if r["kind"] == "sice":
            d = s - (A0 + B0 * r["logmean"] + 0.5)
            r["psnr"], r["ssim"] = (30.0 - 10.0 * d**2).tolist(), (0.9 - 0.1 * d**2).tolist()
    even = fit(rows, s, hi=2.5)
    heavy = fit(rows, s, hi=2.5, sice_weight=5.0)
    assert heavy["sice_weight"] == 5.0 and even["sice_weight"] == 1.0
    assert heavy["with_fit"]["sice"]["psnr"] > even["with_fit"]["sice"]["psnr"]
    assert heavy["with_fit"]["camvid_dark"]["psnr"] < even["with_fit"]["camvid_dark"]["psnr"]
    with pytest.raises(ValueError, match="kind weights"):
        fit(rows, s, hi=2.5, sice_weight=-1.0)


def test_ties_go_to_the_first_grid_point_and_bad_scores_are_refused():
    s = strengths_to(2.5)
    rows = _rows(s)
    for r in rows:  # every strength scores the same: every (a, b, c) ties
        r["psnr"], r["ssim"] = [25.0] * len(s), [0.8] * len(s)
    out = fit(rows, s, hi=2.5, a_min=-1.0, b_min=-0.5, c_min=-0.3)
    assert out["exposure"] == {"a": -1.0, "b": -0.5, "c": -0.3, "lo": 0.0, "hi": 2.5}
    rows[3]["ssim"] = [float("nan")] * len(s)
    with pytest.raises(ValueError, match="NaN"):
        fit(rows, s, hi=2.5)


def test_a_spread_fit_that_picks_zero_writes_no_d():
    s = strengths_to(2.5)
    rows = _rows(s)
    for r in rows:
        r["logstd"] = 0.0  # no spread anywhere: d changes nothing, so the tie keeps d = 0
    out = fit(rows, s, hi=2.5, d_max=1.0)
    assert out["exposure"] == {"a": A0, "b": B0, "c": 0.0, "lo": 0.0, "hi": 2.5}


def _script():
    """``scripts/fit_exposure.py`` as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "fit_exposure.py"
    spec = importlib.util.spec_from_file_location("fit_exposure_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_add_stats_fills_old_sweeps_only_from_the_same_pairs():
    import torch

    script = _script()
    torch.manual_seed(0)
    images = [torch.rand(1, 3, 16, 16) * k for k in (0.2, 0.6)]
    pairs = [("sice", f"p{i}", x, x) for i, x in enumerate(images)]
    rows = [{"name": n, "logmean": script.stats(x)["logmean"], "psnr": []} for _, n, x, _ in pairs]
    script.add_stats(rows, iter(pairs))
    for key in ("logstd", "chroma", "saturation"):
        assert [r[key] for r in rows] == [script.stats(x)[key] for x in images]
    assert rows[0]["logstd"] > 0.0
    with pytest.raises(SystemExit, match="p9 is not p0"):  # another pair under this name
        script.add_stats([{**rows[0], "name": "p9"}, rows[1]], iter(pairs))
    with pytest.raises(SystemExit, match="not the same image"):  # same name, another image
        script.add_stats([{**rows[0], "logmean": rows[0]["logmean"] + 0.5}, rows[1]], iter(pairs))
    with pytest.raises(SystemExit, match="3 pairs, these settings make 2"):
        script.add_stats(rows[:1] + rows, iter(pairs))


def _colour_rows(s: np.ndarray, n: int = 60) -> list[dict]:
    """Pairs whose best strength grows with the chroma spread and falls with the saturation."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        r = {
            "kind": ("sice", "camvid_dark", "camvid_normal")[i % 3],
            "logmean": float(rng.uniform(-4.0, -1.2)),
            "loghigh": float(rng.uniform(-1.5, -0.1)),
            "logstd": float(rng.uniform(0.5, 1.5)),
            "chroma": float(rng.uniform(0.1, 0.6)),
            "saturation": float(rng.uniform(0.1, 0.6)),
        }
        best = np.clip(-0.4 - 0.3 * r["logmean"] + 1.5 * r["chroma"] - 1.0 * r["saturation"], 0.0, 2.5)
        r["psnr"], r["ssim"] = (
            (30.0 - 10.0 * (s - best) ** 2).tolist(),
            (0.9 - 0.1 * (s - best) ** 2).tolist(),
        )
        rows.append(r)
    return rows


def test_fit_terms_recovers_colour_weights_and_beats_the_grid():
    from sclle.train.exposure_fit import fit_terms

    s = strengths_to(2.5)
    rows = _colour_rows(s)
    out = fit_terms(rows, s, ("b", "e", "f"), hi=2.5)
    ex = out["exposure"]
    assert ex["b"] == pytest.approx(-0.3, abs=0.05) and ex["c"] == 0.0 and "d" not in ex
    assert ex["e"] == pytest.approx(1.5, abs=0.15) and ex["f"] == pytest.approx(-1.0, abs=0.15)
    assert out["with_fit"]["sice"]["psnr"] > 29.9  # near the peak of every pair
    grid = fit(rows, s, hi=2.5, a_min=-3.0, b_min=-1.0, c_min=-1.0)  # the luminance rule cannot
    assert grid["with_fit"]["sice"]["psnr"] < out["with_fit"]["sice"]["psnr"] - 0.5
    ExposureControl(**ex)
    assert fit_terms(rows, s, ("b", "e", "f"), hi=2.5) == out  # seeded: the same numbers every time


def test_fit_terms_keeps_the_signs_and_refuses_what_it_cannot_fit():
    from sclle.train.exposure_fit import fit_terms

    s = strengths_to(2.5)
    rows = _rows(s)
    for r in rows:  # best strength now *grows* with the brightness: the sign bound must hold b at 0
        best = np.clip(2.0 + 0.5 * r["logmean"], 0.0, 2.5)
        r["psnr"], r["ssim"] = (
            (30.0 - 10.0 * (s - best) ** 2).tolist(),
            (0.9 - 0.1 * (s - best) ** 2).tolist(),
        )
    out = fit_terms(rows, s, ("b",), hi=2.5)
    assert out["exposure"]["b"] == 0.0
    ExposureControl(**out["exposure"])
    with pytest.raises(ValueError, match="terms must be"):
        fit_terms(rows, s, ("z",), hi=2.5)
    with pytest.raises(ValueError, match="lack"):
        fit_terms(rows, s, ("b", "e"), hi=2.5)  # these rows have no chroma statistic
    with pytest.raises(ValueError, match="above the sweep"):
        fit_terms(rows, s, ("b",), hi=3.0)


def test_cross_validation_prefers_the_terms_the_rows_were_built_from():
    from sclle.train.exposure_fit import cross_validate

    s = strengths_to(2.5)
    rows = _colour_rows(s)
    right = cross_validate(rows, s, ("b", "e", "f"), hi=2.5)
    wrong = cross_validate(rows, s, ("b", "c"), hi=2.5)
    assert right["objective"] > wrong["objective"] + 1.0
    assert right["held_out"]["sice"]["psnr"] > max(
        28.0, wrong["held_out"]["sice"]["psnr"]
    )  # near the peak (30)
    with pytest.raises(ValueError, match="folds"):
        cross_validate(rows, s, ("b",), hi=2.5, folds=1)


def test_grid_objective_picks_the_setting_the_kinds_agree_on():
    from sclle.train.exposure_fit import grid_objective

    grid = [0.0, 0.5, 1.0]
    rows = [
        {"kind": "sice", "name": "s", "psnr": [18.0, 19.0, 17.0], "ssim": [0.80, 0.80, 0.80]},
        {"kind": "camvid_dark", "name": "d", "psnr": [20.0, 20.0, 18.0], "ssim": [0.88, 0.87, 0.85]},
        {"kind": "camvid_normal", "name": "n", "psnr": [float("inf")] * 3, "ssim": [1.0, 1.0, 1.0]},
    ]
    out = grid_objective(rows, grid)
    assert out["best"] == 0.5  # +1 dB on SICE outweighs -0.2 (20 x 0.01) on darkened CamVid
    assert out["objective"]["0.5"] > out["objective"]["0"] > out["objective"]["1"]
    assert out["table"]["0.5"]["sice"]["psnr"] == 19.0 and out["table"]["1"]["camvid_dark"]["ssim"] == 0.85
    with pytest.raises(ValueError, match="strengths"):
        grid_objective(rows, [0.0, 1.0])  # the rows do not match the grid


def test_chroma_sweep_scores_each_weight_on_the_curves_own_output():
    import torch

    from sclle.metrics import create
    from sclle.models.base import apply_le_curves
    from sclle.models.chroma import keep_chroma
    from sclle.models.dce import DCENet

    script = _script()
    torch.manual_seed(0)
    net = DCENet().eval()  # no exposure rule: strength 1
    with torch.no_grad():
        net.e_conv7.bias.fill_(-0.5)
    ref = torch.rand(1, 3, 32, 32)
    x = (0.4 * ref**2).clamp(0, 1)  # darkened by a per-channel gamma: more saturated than ref
    rows = script.chroma_sweep(net, [("camvid_dark", "p", x, ref)], [0.0, 1.0], progress=False)
    assert len(rows) == 1 and len(rows[0]["psnr"]) == 2 and len(rows[0]["ssim"]) == 2
    half = script._half
    with torch.no_grad():
        y = apply_le_curves(half(x), half(net(x)))
    psnr = create("psnr")
    assert rows[0]["psnr"][0] == pytest.approx(float(psnr(y, half(ref))), abs=1e-4)  # k = 0: the curves alone
    assert rows[0]["psnr"][1] == pytest.approx(float(psnr(keep_chroma(half(x), y, 1.0), half(ref))), abs=1e-4)

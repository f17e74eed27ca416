"""Adaptive exposure (sclle.models.exposure): the statistic, the strength, and how the engine uses it."""

from __future__ import annotations

import math

import pytest
import torch

from sclle.enhancement.engine import Engine, EngineConfig
from sclle.models.dce import DCENet
from sclle.models.exposure import ExposureControl, adaptive_strength, log_mean_luminance

EXPOSURE = {"a": -0.8, "b": -1.0, "lo": 0.0, "hi": 1.5}


def _net(exposure=EXPOSURE) -> DCENet:
    torch.manual_seed(0)
    net = DCENet(exposure=exposure).eval()
    with torch.no_grad():  # a net that clearly brightens: negative curve maps everywhere
        net.e_conv7.bias.fill_(-1.0)
    return net


def test_log_mean_luminance_exact_values():
    x = torch.zeros(2, 3, 4, 6)
    x[0] = 0.5  # grey: luma 0.5 everywhere
    x[1, :, :2] = 1.0  # half white, half black (black floored at 1/255)
    got = log_mean_luminance(x)
    assert got.shape == (2,)
    assert got[0].item() == pytest.approx(math.log(0.5), abs=1e-6)
    assert got[1].item() == pytest.approx(0.5 * math.log(1 / 255), abs=1e-6)


def test_log_mean_is_the_same_in_bands():
    x = torch.rand(1, 3, 1100, 9)  # more rows than one band
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    expect = luma.clamp_min(1 / 255).log().mean()
    assert log_mean_luminance(x).item() == pytest.approx(expect.item(), rel=1e-5)


def test_strength_is_clamped_and_darker_means_stronger():
    levels = torch.tensor([0.02, 0.1, 0.2, 0.45, 0.9]).view(-1, 1, 1, 1).expand(-1, 3, 8, 8)
    s = adaptive_strength(levels, **EXPOSURE)
    assert s.tolist() == sorted(s.tolist(), reverse=True)
    assert s[0].item() == pytest.approx(1.5) and s[-1].item() == pytest.approx(0.0)
    assert s[2].item() == pytest.approx(-0.8 - math.log(0.2), abs=1e-5)


def test_gradcheck_and_module_twin():
    x = (torch.rand(1, 3, 5, 5, dtype=torch.float64) * 0.3 + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: adaptive_strength(t, -0.8, -1.0, 0.0, 2.0), (x,))
    assert torch.equal(ExposureControl(**EXPOSURE)(x.detach()), adaptive_strength(x.detach(), **EXPOSURE))


@pytest.mark.parametrize(
    "bad", [{"b": 0.5}, {"c": 0.1}, {"d": -0.1}, {"lo": -0.1}, {"hi": 4.5}, {"lo": 1.0, "hi": 0.5}]
)
def test_refuses_settings_that_invert_or_exceed(bad):
    with pytest.raises(ValueError, match="exposure control"):
        ExposureControl(**{**EXPOSURE, **bad})


def test_state_dict_stays_a_plain_dce_net():
    assert set(_net().state_dict()) == set(DCENet().state_dict())
    DCENet(exposure=EXPOSURE).load_state_dict(DCENet().state_dict(), strict=True)


def test_engine_follows_the_image_strength():
    net = _net()
    dark, bright = torch.full((1, 3, 32, 32), 0.05), torch.full((1, 3, 32, 32), 0.6)
    eng = Engine(net)
    assert torch.equal(eng(bright), bright)  # s = 0: a well-exposed image is left exactly alone
    plain = Engine(_net(None))
    s = adaptive_strength(dark, **EXPOSURE).item()
    assert s == pytest.approx(1.5)
    expect = Engine(_net(None), EngineConfig(strength=s))(dark)
    assert torch.allclose(eng(dark), expect, atol=1e-6)
    assert eng(dark).mean() > plain(dark).mean()  # lifted more than the plain network does
    # the user's strength multiplies the model's
    half = Engine(net, EngineConfig(strength=0.5))(dark)
    assert torch.allclose(half, Engine(_net(None), EngineConfig(strength=0.5 * s))(dark), atol=1e-6)


COLOUR_RULE = {"a": -1.9, "b": -0.3, "c": -1.2, "d": 1.0, "e": 2.6, "f": -2.6, "lo": 0.0, "hi": 2.0}


@pytest.mark.parametrize("exposure", [EXPOSURE, COLOUR_RULE])
def test_batch_tiles_fast_and_export_use_one_strength_per_image(exposure):
    net = _net(exposure)
    torch.manual_seed(1)
    a = torch.rand(1, 3, 64, 80) * 0.15
    b = torch.rand(1, 3, 64, 80) * 0.5 + 0.1
    assert adaptive_strength(a, **exposure).item() > 0.1  # the dark image is lifted by either rule
    both = Engine(net)(torch.cat([a, b]))
    assert torch.allclose(both[:1], Engine(net)(a), atol=1e-6)
    assert torch.allclose(both[1:], Engine(net)(b), atol=1e-6)
    tiled = Engine(net, EngineConfig(tile=32, overlap=8))(a)
    assert torch.allclose(
        tiled, Engine(net, EngineConfig(tile=0))(a), atol=1e-5
    )  # the whole image's statistic
    assert torch.allclose(net.enhance(a), Engine(net)(a), atol=1e-6)  # export path (net.enhance) agrees
    fast = Engine(net, EngineConfig(fast_scale=0.5))(a)
    assert (fast - Engine(net)(a)).abs().mean() < 0.05


def test_highlight_term_tells_a_lit_sky_from_an_even_dark_room():
    from sclle.models.exposure import log_highlight_luminance

    room = torch.full((1, 3, 20, 20), 0.12)
    dusk = torch.full((1, 3, 20, 20), 0.06)
    dusk[..., :4, :] = 0.9  # a bright sky band over a dark street
    lm_room, lm_dusk = log_mean_luminance(room), log_mean_luminance(dusk)
    assert abs(lm_room.item() - lm_dusk.item()) < 0.5  # the log-mean alone barely separates them
    assert log_highlight_luminance(dusk).item() > log_highlight_luminance(room).item() + 1.0
    assert log_highlight_luminance(room).item() == pytest.approx(
        math.log(0.12), abs=1e-5
    )  # flat: p-mean = value
    kw = {"a": -1.3, "b": -0.7, "c": -1.1, "lo": 0.0, "hi": 1.5}
    assert adaptive_strength(dusk, **kw).item() < adaptive_strength(room, **kw).item()  # dusk: lifted less
    assert ExposureControl(**kw).config() == kw


def test_bundled_default_carries_its_exposure_and_its_file_is_recognised(tmp_path):
    import shutil

    from sclle.models import registry

    net, entry = registry.load_weights("sclle-default")
    assert (
        isinstance(net.exposure, ExposureControl) and entry.arch_kwargs["exposure"] == net.exposure.config()
    )
    fixed, _ = registry.load_weights("sclle-fixed-strength")
    assert fixed.exposure is None and registry.get_entry("sclle-fixed-strength").sha256 == entry.sha256
    copy = tmp_path / "renamed.safetensors"
    shutil.copy(registry.resolve_weights("sclle-default"), copy)
    again, found = registry.load_weights(weights=copy)  # one file, two entries: the default wins
    assert found is not None and found.name == "sclle-default" and again.exposure is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "exposure",
    [
        EXPOSURE,
        {"a": -1.5, "b": -0.3, "c": -0.9, "d": 0.8, "lo": 0.0, "hi": 4.0},
        {"a": -1.9, "b": -0.3, "c": -1.2, "d": 1.0, "e": 2.6, "f": -2.6, "lo": 0.0, "hi": 2.0},  # COLOUR_RULE
    ],
)
def test_onnx_export_keeps_the_exposure_and_dynamic_height(exposure, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from sclle.models.export import export_model

    net = _net(exposure)
    path = export_model(net, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, level in ((40, 0.05), (600, 0.3), (48, 0.8)):  # 600 rows: more than one band in PyTorch
        x = torch.rand(1, 3, h, 24, generator=torch.Generator().manual_seed(h)) * level
        (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = net.enhance(x)
        assert float((torch.from_numpy(got) - want).abs().max()) < 1e-4
    bright = torch.full((1, 3, 32, 32), 0.8)
    (got,) = sess.run(None, {sess.get_inputs()[0].name: bright.numpy()})
    assert float((torch.from_numpy(got) - bright).abs().max()) < 1e-6  # s = 0 survives export


def test_spread_exact_values_and_what_darkening_does_to_it():
    from sclle.models.exposure import log_luminance_spread, luminance_stats

    flat = torch.full((1, 3, 6, 6), 0.3)
    assert 0.0 <= log_luminance_spread(flat).item() < 1e-3  # no spread (up to rounding), never a NaN
    two = torch.full((1, 3, 4, 4), 0.8)
    two[..., :2, :] = 0.2  # half the pixels at each of two greys: std = |log 0.8 - log 0.2| / 2
    assert log_luminance_spread(two).item() == pytest.approx(math.log(4.0) / 2, abs=1e-5)
    torch.manual_seed(0)
    grey = (torch.rand(1, 1, 64, 64) * 0.8 + 0.15).expand(1, 3, 64, 64)  # no pixel near the log floor
    s0 = log_luminance_spread(grey).item()
    assert log_luminance_spread(0.5 * grey).item() == pytest.approx(s0, rel=1e-4)  # a gain leaves it
    assert log_luminance_spread(grey**2.5).item() == pytest.approx(2.5 * s0, rel=1e-4)  # a gamma scales it
    mean, high, spread = luminance_stats(grey)  # one pass gives the same as the single statistics
    assert mean.item() == pytest.approx(log_mean_luminance(grey).item(), abs=1e-6)
    assert spread.item() == s0
    tall = torch.rand(2, 3, 300, 7) ** 2  # several bands of rows, pixels at the floor too: against torch.std
    luma = (tall * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).clamp_min(1 / 255).log()
    want = luma.double().std(dim=(1, 2), correction=0)
    assert torch.allclose(log_luminance_spread(tall).double(), want, atol=1e-5)
    m2, h2, none = luminance_stats(grey, spread=False)  # the rule without d skips the spread's pass
    assert torch.equal(m2, mean) and torch.equal(h2, high) and none.item() == 0.0


def test_spread_term_lifts_the_harder_darkened_of_two_images_with_one_mean():
    torch.manual_seed(0)
    scene = (torch.rand(1, 1, 32, 32) * 0.7 + 0.25).expand(1, 3, 32, 32)
    dim = 0.6 * scene  # a dim scene, darkened by a gain
    g = 2.5  # a bright scene darkened by a gamma, then matched to the same log-mean
    hard = scene**g
    hard = hard * (log_mean_luminance(dim) - log_mean_luminance(hard)).exp().view(1, 1, 1, 1)
    assert log_mean_luminance(hard).item() == pytest.approx(log_mean_luminance(dim).item(), abs=1e-5)
    kw = {"a": -0.5, "b": -0.5, "c": 0.0, "d": 1.5, "lo": 0.0, "hi": 4.0}
    assert adaptive_strength(hard, **kw).item() > adaptive_strength(dim, **kw).item() + 0.2
    no_d = {**kw, "d": 0.0}
    assert adaptive_strength(hard, **no_d).item() == pytest.approx(
        adaptive_strength(dim, **no_d).item(), abs=1e-5
    )
    control = ExposureControl(**kw)
    assert control.config() == kw and torch.equal(control(hard), adaptive_strength(hard, **kw))
    assert "d" not in ExposureControl(**no_d).config()  # entries written before the spread term stay equal


def test_gradcheck_with_every_term():
    x = (torch.rand(1, 3, 300, 4, dtype=torch.float64) * 0.4 + 0.05).requires_grad_()  # > one band of rows
    assert torch.autograd.gradcheck(lambda t: adaptive_strength(t, 0.2, -0.3, 0.0, 4.0, c=-0.9, d=0.8), (x,))


def test_colour_stats_exact_values_and_what_darkening_does_to_them():
    from sclle.models.exposure import chroma_spread, colour_stats, mean_saturation

    grey = torch.full((1, 3, 8, 8), 0.4)
    assert colour_stats(grey)[0].item() == 0.0 and colour_stats(grey)[1].item() == 0.0  # no colour, no NaN
    two = torch.empty(1, 3, 8, 8)
    two[0, :, :4] = torch.tensor([0.6, 0.3, 0.3]).view(3, 1, 1)  # reddish rows, then bluish rows
    two[0, :, 4:] = torch.tensor([0.3, 0.3, 0.6]).view(3, 1, 1)
    # log(r/g) is log 2 on half the pixels and 0 on the others, log(b/g) the reverse: var = (log 2)^2 / 4 each
    assert chroma_spread(two).item() == pytest.approx(math.sqrt(2) * math.log(2) / 2, abs=1e-5)
    assert mean_saturation(two).item() == pytest.approx(0.5, abs=1e-6)
    torch.manual_seed(0)
    scene = torch.rand(2, 3, 64, 48) * 0.65 + 0.3  # no channel near a floor, even after the gamma below
    chroma, saturation = colour_stats(scene)
    c_gain, s_gain = colour_stats(0.5 * scene)  # a gain changes neither
    assert torch.allclose(c_gain, chroma, rtol=1e-4) and torch.allclose(s_gain, saturation, rtol=1e-4)
    assert torch.allclose(chroma_spread(scene**2.5), 2.5 * chroma, rtol=1e-4)  # a gamma scales the spread
    dark = torch.cat([scene, torch.zeros(2, 3, 64, 48)], dim=2)  # black rows are left out, not averaged in
    assert torch.allclose(colour_stats(dark)[0], chroma, rtol=1e-4)
    assert torch.allclose(colour_stats(dark)[1], saturation, rtol=1e-4)


def test_colour_stats_in_bands_match_a_direct_computation():
    from sclle.models.exposure import COLOUR_MIN_LUMA, COLOUR_STRIDE, colour_stats

    torch.manual_seed(1)
    x = torch.rand(1, 3, 700, 9) ** 2  # several bands after the stride, pixels under the luma floor too
    sub = x[..., ::COLOUR_STRIDE, ::COLOUR_STRIDE].double()
    luma = (sub * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)).sum(1)
    keep = luma[0] >= COLOUR_MIN_LUMA
    ch = sub[0].clamp_min(1 / 255).log()
    u, v = (ch[0] - ch[1])[keep], (ch[2] - ch[1])[keep]
    want_chroma = (u.var(correction=0) + v.var(correction=0)).sqrt()
    hi, lo = sub[0].amax(0)[keep], sub[0].amin(0)[keep]
    want_sat = ((hi - lo) / hi.clamp_min(1 / 255)).mean()
    chroma, sat = colour_stats(x)
    assert chroma.item() == pytest.approx(want_chroma.item(), abs=1e-4)
    assert sat.item() == pytest.approx(want_sat.item(), abs=1e-5)


def test_colour_terms_in_the_rule_twin_config_and_gradcheck():
    from sclle.models.exposure import colour_stats, luminance_stats

    kw = {"a": 0.3, "b": -0.4, "c": -0.5, "d": 0.6, "e": 1.2, "f": -0.8, "lo": 0.0, "hi": 4.0}
    torch.manual_seed(2)
    x = torch.rand(2, 3, 40, 30) * 0.5
    mean, high, spread = luminance_stats(x)
    chroma, sat = colour_stats(x)
    want = (0.3 - 0.4 * mean - 0.5 * high + 0.6 * spread + 1.2 * chroma - 0.8 * sat).clamp(0.0, 4.0)
    assert torch.allclose(adaptive_strength(x, **kw), want, atol=1e-6)
    control = ExposureControl(**kw)
    assert control.config() == kw and torch.equal(control(x), adaptive_strength(x, **kw))
    assert "e" not in ExposureControl(**{**kw, "e": 0.0}).config()  # older entries stay as they were
    y = (torch.rand(1, 3, 300, 4, dtype=torch.float64) * 0.4 + 0.1).requires_grad_()  # > one band
    assert torch.autograd.gradcheck(lambda t: adaptive_strength(t, **kw), (y,))


@pytest.mark.parametrize("bad", [{"a": math.nan}, {"e": math.inf}, {"f": -math.inf}])
def test_refuses_weights_that_are_not_finite(bad):
    with pytest.raises(ValueError, match="finite"):
        ExposureControl(**{**EXPOSURE, **bad})

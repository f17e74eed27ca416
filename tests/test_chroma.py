"""Chroma keeping (sclle.models.chroma): exact values, bands, gradcheck, the twin, and every engine path."""

from __future__ import annotations

import math

import pytest
import torch

from sclle.enhancement.engine import Engine, EngineConfig
from sclle.models.chroma import KeepChroma, keep_chroma, keep_chroma_
from sclle.models.dce import DCENet

RULE = {"a": -1.9, "b": -0.3, "c": -1.2, "e": 2.6, "f": -2.6, "lo": 0.0, "hi": 2.0}


def _net(k: float, exposure=RULE) -> DCENet:
    torch.manual_seed(0)
    net = DCENet(exposure=exposure, chroma_keep=k).eval()
    with torch.no_grad():  # a net that clearly brightens: negative curve maps everywhere
        net.e_conv7.bias.fill_(-1.0)
    return net


def test_exact_values():
    x = torch.tensor([0.1, 0.2, 0.4]).view(1, 3, 1, 1)
    y = torch.tensor([0.25, 0.25, 0.3]).view(1, 3, 1, 1)  # the curves paled it
    lx = 0.299 * 0.1 + 0.587 * 0.2 + 0.114 * 0.4
    ly = 0.299 * 0.25 + 0.587 * 0.25 + 0.114 * 0.3
    kept = torch.tensor([0.1, 0.2, 0.4]) * ly / lx
    for k in (0.0, 0.25, 1.0):
        want = (torch.tensor([0.25, 0.25, 0.3]) * (1 - k) + kept * k).clamp(0, 1)
        assert torch.allclose(keep_chroma(x, y, k).flatten(), want, atol=1e-6)
    full = keep_chroma(x, y, 1.0).flatten()
    assert full.max() < 1  # nothing clipped here
    assert full[2] / full[0] == pytest.approx(4.0, rel=1e-5)  # k = 1: the input's ratios
    assert full[0] * 0.299 + full[1] * 0.587 + full[2] * 0.114 == pytest.approx(ly, rel=1e-5)  # at y's luma


def test_grey_stays_grey_and_k0_is_the_curves_output():
    x = torch.full((1, 3, 4, 5), 0.2)
    y = torch.rand(1, 3, 4, 5)
    assert keep_chroma(x, y, 0.0) is y
    grey_y = y.mean(1, keepdim=True).expand_as(y).contiguous()
    assert torch.allclose(
        keep_chroma(x, grey_y, 0.7), grey_y, atol=1e-6
    )  # grey in, grey out: nothing to keep


def test_clipped_and_black_pixels_stay_in_range():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.01, 0.01]]).T.reshape(1, 3, 1, 2)
    y = torch.tensor([[0.3, 0.3, 0.3], [1.0, 0.9, 0.9]]).T.reshape(1, 3, 1, 2)
    out = keep_chroma(x, y, 1.0)
    assert bool(torch.isfinite(out).all()) and out.min() >= 0 and out.max() <= 1
    assert out[0, :, 0, 0].abs().max() == 0  # black input: no ratio to keep, and no division by zero
    # the red light's kept colour (3.0, 0.03, 0.03) is out of gamut: moved to its grey until it fits, same luma
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([1.0, 0.9, 0.9]), atol=1e-4)


def test_nothing_clips_that_the_curves_left_unclipped():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 40, 40, generator=g) ** 2 * 0.9 + 0.05  # saturated colours, none black
    y = (x * 3).clamp(0, 0.98)  # a strong lift that stops short of 1
    for k in (0.2, 1.0):
        out = keep_chroma(x, y, k)
        assert (
            out.max() < 1.0 if k < 1 else out.max() <= 1.0
        )  # k = 1: the gamut's edge is reached, not passed
        luma = (out * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
        want = (y * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
        assert torch.allclose(
            luma, want, atol=1e-4
        )  # the output's luma is the curves', gamut mapping included


def test_in_place_bands_match_the_function():
    x, y = torch.rand(2, 3, 300, 17), torch.rand(2, 3, 300, 17)  # more rows than one band
    want = keep_chroma(x, y, 0.3)
    got = keep_chroma_(x, y.clone(), 0.3, rows=64)
    assert torch.allclose(got, want, atol=1e-6)


def test_gradcheck_and_module_twin():
    x = torch.rand(1, 3, 3, 4, dtype=torch.float64) * 0.5 + 0.1
    y = torch.rand(1, 3, 3, 4, dtype=torch.float64) * 0.5 + 0.2
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: keep_chroma(a, b, 0.4), (x, y))
    assert torch.equal(KeepChroma(0.4)(x, y), keep_chroma(x, y, 0.4))
    assert "k=0.4" in repr(KeepChroma(0.4))


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf])
def test_refuses_k_outside_zero_one(bad):
    with pytest.raises(ValueError, match="chroma keeping"):
        KeepChroma(bad)
    with pytest.raises(ValueError, match="chroma keeping"):
        DCENet(chroma_keep=bad)


def test_keeps_more_of_a_blue_dusk_than_the_curves_alone():
    x = torch.zeros(1, 3, 32, 32)
    x[:, 0], x[:, 1], x[:, 2] = 0.05, 0.08, 0.2  # a dark blue sky
    plain, kept = _net(0.0, exposure=None), _net(0.5, exposure=None)  # strength 1: a flat image is lifted
    for net in (plain, kept):
        with torch.no_grad():
            net.e_conv7.bias.fill_(-0.3)  # a mild lift: nothing clips
    y0, y1 = Engine(plain)(x), Engine(kept)(x)

    def blueness(t):
        return float(t[:, 2].mean() / t[:, 0].mean())

    assert blueness(y1) > blueness(y0) + 0.1
    assert abs(float(y1.mean()) - float(y0.mean())) < 0.05  # the brightness is the curves' own


def test_exact_tiled_fast_and_export_paths_agree():
    net = _net(0.25)
    a = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(1)) * 0.3
    exact = Engine(net, EngineConfig(tile=0))(a)
    assert torch.allclose(Engine(net, EngineConfig(tile=32, overlap=8))(a), exact, atol=1e-5)
    assert torch.allclose(net.enhance(a), exact, atol=1e-6)  # what export runs
    fast = Engine(net, EngineConfig(fast_scale=0.5))(a)
    # the fused fast path must finish with the same step: compare with fast-mode curves applied by net.apply
    eng = Engine(net, EngineConfig(fast_scale=0.5))
    want = net.apply(a, net.params_at_scale(a, 0.5), strength=float(net.image_strength(a)))
    assert eng.scale == 0.5 and torch.allclose(fast, want, atol=1e-5)
    plain_fast = Engine(_net(0.0), EngineConfig(fast_scale=0.5))(a)
    assert (fast - plain_fast).abs().max() > 1e-3  # and the step did something there


@pytest.mark.slow
def test_onnx_export_keeps_the_chroma_step(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from sclle.models.export import export_model

    net = _net(0.25)
    path = export_model(net, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(3)) * 0.2
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = net.enhance(x)
        plain = _net(0.0).enhance(x)
    assert float((torch.from_numpy(got) - want).abs().max()) < 1e-4
    assert float((torch.from_numpy(got) - plain).abs().max()) > 1e-3


def test_bundled_default_carries_its_chroma_weight():
    from sclle.models import registry

    net, entry = registry.load_weights("sclle-default")
    assert net.chroma is not None and net.chroma.k == entry.arch_kwargs["chroma_keep"]
    fixed, _ = registry.load_weights("sclle-fixed-strength")  # the paper's arithmetic: curves only
    assert fixed.chroma is None and fixed.exposure is None

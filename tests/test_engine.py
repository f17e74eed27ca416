"""Execution modes: strength, fast (low-res curves), tiled exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sclle.enhancement.engine import Engine, EngineConfig, tiled_enhance, tiled_map
from sclle.models.dce import DCENet, fast_curves


@pytest.fixture(scope="module")
def net() -> DCENet:
    torch.manual_seed(0)
    n = DCENet().eval()
    with torch.no_grad():  # a darker-than-default init so curves are not ~0
        n.e_conv7.bias.fill_(-0.4)
    return n


def test_strength_zero_is_identity(net):
    x = torch.rand(1, 3, 33, 47)
    assert torch.equal(Engine(net, EngineConfig(strength=0.0))(x), x)


def test_strength_scales_curves_monotonically(net):
    x = torch.rand(1, 3, 24, 24) * 0.3
    means = [Engine(net, EngineConfig(strength=s))(x).mean().item() for s in (0.0, 0.5, 1.0, 1.5)]
    assert means == sorted(means) and means[-1] > means[0]
    assert torch.allclose(Engine(net, EngineConfig(strength=1.0))(x), net.enhance(x))


@pytest.mark.parametrize("tile,size", [(32, (70, 95)), (17, (40, 41)), (64, (64, 64)), (16, (100, 23))])
def test_tiled_equals_untiled(net, tile, size):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        full = net.enhance(x)
        tiled = tiled_enhance(net, x, tile=tile, overlap=7)
    assert (full - tiled).abs().max() <= 1e-5


def test_tiled_with_too_little_overlap_differs(net):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        bad = tiled_map(lambda t: net.enhance(t), x, 16, 2)
        assert (bad - net.enhance(x)).abs().max() > 1e-5  # the overlap requirement is real
    with pytest.raises(ValueError, match="receptive-field"):
        tiled_enhance(net, x, tile=16, overlap=2)
    with pytest.raises(ValueError, match="receptive-field"):
        Engine(net, EngineConfig(tile=32, overlap=3))


def test_fast_keeps_size_and_is_close_for_smooth_images(net):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 81), torch.linspace(0, 1, 123), indexing="ij")
    x = (0.05 + 0.2 * torch.stack([yy, xx, (yy + xx) / 2])).unsqueeze(0)
    with torch.no_grad():
        c = fast_curves(net, x, 0.25)
    assert c.shape == (1, 24, 81, 123)
    exact = Engine(net)(x)
    fast = Engine(net, EngineConfig(fast_scale=0.25))(x)
    assert fast.shape == x.shape
    mse = torch.mean((fast - exact) ** 2)
    assert 10 * torch.log10(1 / mse) > 25


def test_engine_preserves_dtype_and_rejects_bad_shapes(net):
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert Engine(net)(x).dtype == torch.float64
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        Engine(net)(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="float"):
        Engine(net)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="strength"):
        EngineConfig(strength=-0.1)


@pytest.mark.parametrize("strength", [1.0, 0.6, 1.8])
@pytest.mark.parametrize("size", [(81, 123), (17, 9), (64, 64)])
def test_banded_fast_path_equals_plain_fast_path(net, strength, size):
    from sclle.models.dce import apply_curves

    x = torch.rand(2, 3, *size) * 0.4
    with torch.no_grad():
        plain = apply_curves(x, (fast_curves(net, x, 0.25) * strength).clamp(-1, 1))
    banded = Engine(net, EngineConfig(fast_scale=0.25, strength=strength))(x)
    assert (plain - banded).abs().max() <= 1e-5


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(45, 38), (600, 21)])  # one chunk; three chunks of 256 rows
def test_upsample_apply_any_layout_band_and_repeats_equals_plain_form(align_corners, size):
    """Chunked width pass, row-by-row height interpolation into a reused band: same as full-size maps."""
    import torch.nn.functional as F

    from sclle.enhancement.engine import upsample_apply_curves

    torch.manual_seed(1)
    x = torch.rand(2, 3, *size) * 0.5
    small = (torch.rand(2, 6, size[0] // 6, 5) - 0.5) * 0.8  # 2 maps, each applied twice
    full = F.interpolate(small, size=size, mode="bilinear", align_corners=align_corners)
    plain = x.clone()
    for k in (0, 3):
        for _ in range(2):
            plain = plain + full[:, k : k + 3] * (plain**2 - plain)
    plain = plain.clamp(0, 1)
    for xin, rows in ((x, 16), (x.contiguous(memory_format=torch.channels_last), 7), (x, size[0])):
        out = upsample_apply_curves(xin, small, rows=rows, align_corners=align_corners, repeats=2)
        assert out.is_contiguous() and (out - plain).abs().max() <= 1e-5
        assert torch.equal(xin, x)  # the input is left alone
    # only some output rows enhanced, no output given: the other rows are x's, untouched
    part = upsample_apply_curves(x, small, align_corners=align_corners, repeats=2, out_rows=(5, 20))
    assert torch.equal(part[:, :, :5], x[:, :, :5]) and torch.equal(part[:, :, 20:], x[:, :, 20:])
    assert (part[:, :, 5:20] - plain[:, :, 5:20]).abs().max() <= 1e-5


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(("small_h", "out_h", "band"), [(37, 150, 8), (20, 81, 7), (9, 40, 64)])
def test_banded_fast_apply_equals_whole_maps(align_corners, small_h, out_h, band):
    """Maps made band by band (with context rows) and applied to the rows they serve: same output."""
    from sclle.enhancement.engine import banded_upsample_apply, upsample_apply_curves

    torch.manual_seed(2)
    conv = torch.nn.Conv2d(3, 6, 5, padding=2)  # a local "network": radius 2

    def params(t):
        return torch.tanh(conv(t))

    x = torch.rand(1, 3, out_h, 53) * 0.6
    small = F.interpolate(x, size=(small_h, 13), mode="area")
    seen: list[int] = []

    def counted(t):
        seen.append(t.shape[-2])
        return params(t)

    with torch.no_grad():
        ref = upsample_apply_curves(x, params(small), align_corners=align_corners, repeats=2)
        out = banded_upsample_apply(
            x, small, counted, band=band, halo=2, align_corners=align_corners, repeats=2, strength=0.8
        )
        ref08 = upsample_apply_curves(x, params(small), align_corners=align_corners, repeats=2, strength=0.8)
    assert out.shape == x.shape
    assert (out - ref08).abs().max() <= 1e-6
    assert not torch.allclose(ref, ref08)  # strength reached the banded path
    assert len(seen) == -(-small_h // band) and max(seen) <= band + 1 + 2 * 2  # one band of maps at a time


def test_fast_mode_on_a_large_image_is_banded_and_equals_untiled():
    from sclle.enhancement.engine import Engine, EngineConfig
    from sclle.models.dce import DCENet

    torch.manual_seed(4)
    net = DCENet().eval()
    x = torch.rand(1, 3, 397, 290) * 0.4
    whole = Engine(net, EngineConfig(fast_scale=0.5, tile=0))(x)
    banded = Engine(net, EngineConfig(fast_scale=0.5, tile=64))(x)  # small copy 198x145: 4 bands
    assert (whole - banded).abs().max() <= 1e-5


def test_upsample_apply_with_no_curve_steps_is_the_clamped_input():
    from sclle.enhancement.engine import upsample_apply_curves

    x = torch.rand(1, 3, 20, 24) * 1.2
    small = torch.rand(1, 3, 5, 6) - 0.5
    assert torch.equal(upsample_apply_curves(x, small, repeats=0), x.clamp(0, 1))
    assert torch.equal(upsample_apply_curves(x, small[:, :0]), x.clamp(0, 1))

"""Unit tests of sclle.metrics that need no shared data (calibration: test_metrics_calibration.py)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sclle import metrics
from sclle.errors import SclleError
from sclle.metrics._common import imresize_half
from sclle.metrics._niqe import _fit_aggd
from sclle.metrics.color import RGB2GRAY_WEIGHTS, rgb_to_gray255

pytestmark = pytest.mark.usefixtures("one_thread")


def _textured(b: int = 1, h: int = 200, w: int = 300, seed: int = 0) -> torch.Tensor:
    """A smooth random image with some structure (not flat, not pure noise), float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(b, 3, h // 8 + 1, w // 8 + 1, generator=g)
    x = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    x = x + 0.03 * torch.randn(b, 3, h, w, generator=g)
    return x.clamp(0, 1)


def _gray_levels(levels: torch.Tensor) -> torch.Tensor:
    """RGB image with R = G = B = level / 255; MATLAB rgb2gray maps it back to ``level`` exactly."""
    v = levels.to(torch.float32) / 255.0
    return v.expand(1, 3, *v.shape[-2:]).contiguous()


# ---------------------------------------------------------------------------------------------- registry


def test_list_metrics_describes_each_builtin():
    infos = {m.name: m for m in metrics.list_metrics()}
    assert set(infos) == {
        "niqe",
        "piqe",
        "entropy",
        "psnr",
        "mse",
        "ssim",
        "lpips",
        "clipped",
        "cast",
        "miou",
    }
    assert infos["niqe"].kind == "nr" and infos["niqe"].lower_is_better
    assert infos["psnr"].kind == "fr" and not infos["psnr"].lower_is_better
    assert infos["miou"].kind == "seg"
    assert all(m.description for m in infos.values())


def test_create_builds_modules_with_kwargs():
    assert isinstance(metrics.create("niqe"), metrics.NIQE)
    ssim = metrics.create("SSIM", color="y")
    assert isinstance(ssim, metrics.SSIM) and ssim.color == "y"
    cm = metrics.create("miou", num_classes=4, ignore_index=3)
    assert isinstance(cm, metrics.ConfusionMatrix) and cm.ignore_index == 3


def test_unknown_metric_lists_known_names():
    with pytest.raises(SclleError) as exc:
        metrics.create("nqie")
    assert isinstance(exc.value, KeyError)  # the registry's error: ``except KeyError`` keeps working
    msg = str(exc.value)
    assert "nqie" in msg and all(n in msg for n in ("niqe", "piqe", "psnr", "ssim", "miou"))
    assert "did you mean 'niqe'" in msg and "pyiqa:<name>" in msg
    assert "\n" not in msg


def test_registry_refuses_a_second_metric_under_a_taken_name():
    impostor = metrics.MetricInfo("niqe", "nr", False, "not NIQE", metrics.Entropy)
    with pytest.raises(SclleError, match="'niqe' is already registered"):
        metrics.METRICS.register("niqe", impostor)
    assert metrics.METRICS.get("niqe").factory is metrics.NIQE
    assert isinstance(metrics.create("niqe"), metrics.NIQE)


def test_a_registered_metric_is_listed_and_created_then_removed():
    info = metrics.MetricInfo("test-entropy", "nr", False, "entropy under a test name", metrics.Entropy)
    metrics.METRICS.register(info.name, info)
    try:
        assert [m.name for m in metrics.list_metrics()] == metrics.METRICS.names()
        assert metrics.list_metrics()[-1] is info
        assert isinstance(metrics.create("TEST-entropy"), metrics.Entropy)
    finally:
        metrics.METRICS.unregister(info.name)
    assert info.name not in metrics.METRICS
    with pytest.raises(KeyError, match="unknown metric 'test-entropy'"):
        metrics.create("test-entropy")


def test_get_metric_info_is_a_deprecated_alias_of_the_registry():
    with pytest.deprecated_call():
        info = metrics.get_metric_info("SSIM")
    assert info is metrics.METRICS.get("ssim")


@pytest.mark.skipif(importlib.util.find_spec("pyiqa") is not None, reason="pyiqa is installed here")
def test_pyiqa_names_explain_missing_backend():
    with pytest.raises(
        SclleError, match=r"metric pyiqa:musiq needs the optional package pyiqa.*sclle\[iqa\]"
    ):
        metrics.create("pyiqa:musiq")


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="color"):
        metrics.create("psnr", color="lab")
    x = _textured(h=32, w=32)
    with pytest.raises(ValueError, match="color"):
        metrics.ssim(x, x, color="hsv")


# ---------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.rand(3, 128, 128), "batch dimension"),
        (torch.rand(1, 1, 128, 128), r"\(B, 3, H, W\)"),
        (torch.randint(0, 255, (1, 3, 128, 128), dtype=torch.uint8), "float"),
        (torch.rand(1, 3, 128, 128) * 2, r"\[0, 1\]"),
        (torch.rand(1, 3, 128, 128) - 0.5, r"\[0, 1\]"),
        (torch.full((1, 3, 128, 128), float("nan")), "NaN"),
        (np.zeros((1, 3, 128, 128), np.float32), "torch.Tensor"),
    ],
)
@pytest.mark.parametrize("name", ["niqe", "piqe", "entropy"])
def test_no_reference_metrics_check_inputs(name, bad, match):
    with pytest.raises(ValueError, match=match):
        metrics.create(name)(bad)


@pytest.mark.parametrize("name", ["psnr", "ssim"])
def test_full_reference_metrics_check_inputs(name):
    m = metrics.create(name)
    x = _textured(h=40, w=48)
    with pytest.raises(ValueError, match="same shape"):
        m(x, x[..., :-1])
    with pytest.raises(ValueError, match="reference"):
        m(x, x * 3)


def test_size_limits():
    with pytest.raises(ValueError, match="at least 96x96"):
        metrics.niqe(torch.rand(1, 3, 95, 300))
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30))


# ------------------------------------------------------------------------------------------------- NIQE


def test_niqe_batch_shape_and_consistency():
    x = _textured(b=2, h=200, w=300)
    both = metrics.niqe(x)
    assert both.shape == (2,) and both.dtype == torch.float64 and torch.isfinite(both).all()
    assert torch.allclose(both[1], metrics.niqe(x[1:]).squeeze(), rtol=1e-10)


def test_niqe_crops_to_multiple_of_block():
    """Only the top-left multiple of 96 is used: changing pixels outside it must not matter."""
    x = _textured(h=200, w=300)
    y = x.clone()
    y[..., 192:, :] = torch.rand_like(y[..., 192:, :])
    y[..., :, 288:] = 0.0
    assert metrics.niqe(x).item() == pytest.approx(metrics.niqe(y).item(), rel=1e-12)


def test_niqe_penalises_noise():
    x = _textured(h=288, w=384)
    noisy = (x + 0.15 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert metrics.niqe(noisy).item() > metrics.niqe(x).item() + 1.0


@pytest.mark.parametrize(("shape", "sampler"), [(1.0, "laplace"), (2.0, "normal")])
def test_aggd_fit_recovers_shape(shape, sampler):
    g = torch.Generator().manual_seed(0)
    n = 200_000
    if sampler == "normal":
        v = torch.randn(2, n, generator=g, dtype=torch.float64)
    else:
        u = torch.rand(2, n, generator=g, dtype=torch.float64) - 0.5
        v = -torch.sign(u) * torch.log1p(-2 * u.abs())
    # Row 1 asymmetric AGGD: left scale twice the right, so (as the density requires) 2/3 of the mass on the left.
    left = torch.rand(n, generator=g) < 2 / 3
    v[1] = torch.where(left, -2 * v[1].abs(), v[1].abs())
    alpha, bl, br = _fit_aggd(v)
    assert alpha.tolist() == pytest.approx([shape, shape], abs=0.05)
    assert (bl[1] / br[1]).item() == pytest.approx(2.0, rel=0.03)
    assert (bl[0] / br[0]).item() == pytest.approx(1.0, rel=0.03)


def test_imresize_half_matches_antialiased_bicubic():
    """Interior agrees with torch's antialiased Keys cubic; borders use MATLAB's mirror (a ramp stays a ramp)."""
    x = torch.rand(1, 1, 64, 80, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ours = imresize_half(x)
    ref = F.interpolate(x, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    assert ours.shape == (1, 1, 32, 40)
    assert torch.allclose(ours[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-10)
    ramp = torch.arange(40, dtype=torch.float64).view(1, 1, 1, 40).expand(1, 1, 8, 40)
    out = imresize_half(ramp)[0, 0, 0]
    expected = torch.arange(20, dtype=torch.float64) * 2 + 0.5  # centre of each output pixel
    assert torch.allclose(out[3:-3], expected[3:-3], atol=1e-12)


def test_luminance_uses_rgb2gray_weights_and_keeps_grey():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    w = torch.tensor(RGB2GRAY_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(metrics.luminance(x), (x * w).sum(dim=1, keepdim=True), rtol=0, atol=1e-15)
    grey = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(metrics.luminance(grey), x[:, :1], rtol=0, atol=1e-12)
    torch.testing.assert_close(
        rgb_to_gray255(x, quantize=False), metrics.luminance(x * 255.0), rtol=0, atol=0
    )


def test_gray_conversion_is_matlab_rgb2gray():
    x = torch.tensor([[10, 200, 30], [255, 255, 255], [0, 0, 0]], dtype=torch.float32) / 255
    img = x.T.reshape(1, 3, 1, 3)
    got = rgb_to_gray255(img).flatten().tolist()
    expected = [round(0.298936021293775 * 10 + 0.587043074451121 * 200 + 0.114020904255103 * 30), 255, 0]
    assert got == expected


# ------------------------------------------------------------------------------------------ PIQE, entropy


def test_piqe_range_flat_image_and_padding():
    flat = torch.full((1, 3, 50, 70), 0.4)
    assert metrics.piqe(flat).item() == 100.0  # MATLAB: a uniform image scores 100 (worst)
    x = _textured(b=2, h=70, w=90)  # not multiples of 16: padded like MATLAB
    s = metrics.piqe(x)
    assert s.shape == (2,) and ((s >= 0) & (s <= 100)).all()


def test_piqe_penalises_noise():
    x = _textured(h=128, w=128)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    assert metrics.piqe(noisy).item() > metrics.piqe(x).item()


def test_entropy_exact_values():
    constant = _gray_levels(torch.full((1, 16, 16), 77))
    two = _gray_levels(torch.tensor([0, 255]).repeat(1, 16, 8))
    all_levels = _gray_levels(torch.arange(256).view(1, 16, 16))
    got = metrics.entropy(torch.cat([constant, two, all_levels])).tolist()
    assert got == pytest.approx([0.0, 1.0, 8.0], abs=1e-12)


# ------------------------------------------------------------------------------------------- PSNR, SSIM


def test_identical_images():
    x = _textured(b=2, h=40, w=50)
    assert torch.isinf(metrics.psnr(x, x)).all() and (metrics.psnr(x, x) > 0).all()
    for color in ("gray", "y", "rgb"):
        assert metrics.ssim(x, x, color=color).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("color", ["rgb", "y", "gray"])
def test_psnr_one_level_error_is_48db(color):
    ref = torch.zeros(1, 3, 20, 20)
    img = torch.full((1, 3, 20, 20), 1 / 255)  # every pixel off by one 8-bit level -> MSE = 1
    assert metrics.psnr(img, ref, color=color).item() == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_and_ssim_agree_with_scikit_image():
    """Independent implementations: skimage's Gaussian SSIM (population covariance, edges cropped) == 'valid'."""
    a, b = _textured(h=60, w=70, seed=4), _textured(h=60, w=70, seed=5)
    ga = rgb_to_gray255(a)[0, 0].numpy()
    gb = rgb_to_gray255(b)[0, 0].numpy()
    want = structural_similarity(
        ga, gb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert metrics.ssim(a, b).item() == pytest.approx(want, abs=1e-9)
    qa = (a * 255).round().to(torch.uint8).numpy()
    qb = (b * 255).round().to(torch.uint8).numpy()
    assert metrics.psnr(a, b).item() == pytest.approx(
        peak_signal_noise_ratio(qa, qb, data_range=255), abs=1e-9
    )


def test_ssim_rgb_equals_gray_for_gray_images():
    g = torch.Generator().manual_seed(6)
    a = _gray_levels(torch.randint(0, 256, (1, 30, 30), generator=g))
    b = _gray_levels(torch.randint(0, 256, (1, 30, 30), generator=g))
    assert metrics.ssim(a, b, color="rgb").item() == pytest.approx(metrics.ssim(a, b).item(), abs=1e-12)
    assert metrics.ssim(a, b).item() == pytest.approx(metrics.ssim(b, a).item(), abs=1e-12)


def test_ssim_downsample_option_changes_resolution():
    a = _textured(h=600, w=600, seed=7)
    b = (a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(8))).clamp(0, 1)
    plain, down = metrics.ssim(a, b).item(), metrics.ssim(a, b, downsample=True).item()
    assert down > plain  # a 2x2 box filter averages the added noise away


def test_quantize_off_uses_floats():
    a = torch.full((1, 3, 16, 16), 0.5)
    b = torch.full((1, 3, 16, 16), 0.5 + 0.4 / 255)  # rounds to the same 8-bit level
    assert torch.isinf(metrics.psnr(a, b))
    assert torch.isfinite(metrics.psnr(a, b, quantize=False))


# ------------------------------------------------------------------------------------------------- mIoU


def test_confusion_matrix_and_iou_exact():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = metrics.ConfusionMatrix(num_classes=4)
    cm.update(pred, target)
    expected = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    assert torch.equal(cm.matrix, expected)
    iou = cm.iou()
    # class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: 2/(2+1) ; class 2: 2/3; class 3 absent -> nan
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert math.isnan(iou[3].item())
    assert cm.miou().item() == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert metrics.miou_from_confusion(expected).item() == pytest.approx(cm.miou().item())


def test_confusion_matrix_accumulates_and_resets():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 5, (4, 8, 8), generator=g)
    p = torch.randint(0, 5, (4, 8, 8), generator=g)
    t[0, 0, :] = 255
    acc = metrics.create("miou", num_classes=5)
    acc(p[:2], t[:2])
    acc(p[2:], t[2:])
    assert torch.equal(acc.matrix, metrics.confusion_matrix(p, t, 5))
    assert acc.matrix.sum().item() == t.numel() - 8  # ignored pixels are not counted
    acc.reset()
    assert acc.matrix.sum().item() == 0 and math.isnan(acc.miou().item())


def test_ignore_index_none_and_custom():
    t = torch.tensor([0, 1, 11])
    p = torch.tensor([0, 1, 1])
    assert metrics.confusion_matrix(p, t, 12, ignore_index=None).sum().item() == 3
    cm = metrics.confusion_matrix(p, t, 11, ignore_index=11)
    assert cm.sum().item() == 2 and metrics.miou_from_confusion(cm).item() == 1.0


def test_confusion_matrix_rejects_bad_labels():
    cm = metrics.ConfusionMatrix(num_classes=3)
    with pytest.raises(ValueError, match="argmax"):
        cm.update(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="pred labels"):
        cm.update(torch.full((2, 2), 3), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="target labels"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 7))
    with pytest.raises(ValueError, match="same shape"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


# -------------------------------------------------------------------------------------------------- GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_metrics_run_on_gpu_like_on_cpu():
    x = _textured(b=2, h=200, w=300)
    y = _textured(b=2, h=200, w=300, seed=9)
    for name in ("niqe", "piqe", "entropy"):
        got = metrics.create(name)(x.cuda())
        assert got.device.type == "cuda"
        assert torch.allclose(got.cpu(), metrics.create(name)(x), rtol=1e-6)
    for name in ("psnr", "ssim"):
        assert torch.allclose(metrics.create(name)(x.cuda(), y.cuda()).cpu(), metrics.create(name)(x, y))


# ---------------------------------------------------------------------------------------- cast, clipped


def test_cast_of_known_colours():
    """sRGB red is L*a*b* (53.24, 80.09, 67.20) (CIE D65); grey has a* = b* = 0 at any lightness."""
    red = torch.zeros(1, 3, 4, 5)
    red[:, 0] = 1.0
    grey = torch.full((1, 3, 4, 5), 0.5)
    assert metrics.cast(red, grey).item() == pytest.approx(math.hypot(80.09, 67.20), abs=0.02)
    assert (
        metrics.cast(grey * 0.3, grey).item() < 0.01
    )  # lightness is not a cast (skimage: grey a*, b* ~1e-3)


def test_cast_sees_a_tint_psnr_barely_does():
    x = _textured(b=2)
    tinted = x.clone()
    tinted[:, 1] = (tinted[:, 1] + 0.03).clamp(0, 1)  # a green veil, ~2 % of the range
    c = metrics.create("cast")(tinted, x)
    assert c.shape == (2,) and c.dtype == torch.float64
    assert (c > 3).all()  # clearly visible
    assert metrics.psnr(tinted, x).min() > 30  # while PSNR calls it a near-perfect match
    assert torch.equal(metrics.cast(x, x), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(metrics.cast(tinted, x), metrics.cast(x, tinted))  # a distance: symmetric
    torch.testing.assert_close(metrics.cast(tinted[1:], x[1:]), c[1:])  # per image, batch-independent


def test_cast_rejects_mismatched_pairs():
    with pytest.raises(ValueError, match="same shape"):
        metrics.cast(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_clipped_counts_only_new_white_pixels():
    ref = torch.full((1, 3, 2, 5), 0.5)
    ref[..., 0, 0] = 1.0  # clipped already in the reference: not counted
    img = ref.clone()
    img[:, 1, 1, :2] = 1.0  # two pixels newly clipped in one channel
    img[:, :, 0, 1] = 254.0 / 255.0  # just below the 8-bit maximum: not clipped
    assert metrics.create("clipped")(img, ref).tolist() == [pytest.approx(2 / 10)]


def test_mse_and_pooled_psnr_stay_finite_when_one_image_is_unchanged():
    from sclle.metrics import mse, pooled_psnr, psnr

    ref = torch.rand(2, 3, 16, 16)
    out = ref.clone()
    out[1] = (out[1] + 0.1).clamp(0, 1)
    e = mse(out, ref)
    assert e[0] == 0 and e[1] > 0
    p = psnr(out, ref)
    assert torch.isinf(p[0]) and p[1] == pytest.approx(pooled_psnr(float(e[1])))  # same MSE as psnr's
    assert pooled_psnr(float(e.mean())) == pytest.approx(p[1].item() + 10 * np.log10(2))  # half the mean MSE
    assert pooled_psnr(0.0) == float("inf")
    assert metrics.create("mse")(out, ref).shape == (2,) and metrics.get_metric_info("mse").lower_is_better

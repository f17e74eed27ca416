"""Tests for sclle.data.darken: exact tone curve, noise statistics, seeded reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from sclle.data.darken import (
    PAPER_GAMMAS,
    Darken,
    DarkenProtocol,
    GammaDarken,
    NoiseModel,
    RandomDarken,
    darken,
    darken_seeded,
    gamma_darken,
    image_generator,
)


def _image(b: int = 2, h: int = 16, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def test_darken_exact_values_on_2x2() -> None:
    x = torch.tensor([[0.2, 0.4], [0.6, 1.0]]).expand(1, 3, 2, 2).contiguous()
    y = darken(x, gamma=2.0, exposure=0.5)
    expected = torch.tensor([[0.02, 0.08], [0.18, 0.5]]).expand(1, 3, 2, 2)
    torch.testing.assert_close(y, expected)
    assert y.dtype == x.dtype and y.shape == x.shape


def test_gamma_darken_exact_and_paper_levels() -> None:
    x = torch.tensor([[0.5, 0.25], [0.0, 1.0]]).expand(1, 3, 2, 2).contiguous()
    torch.testing.assert_close(gamma_darken(x, 2.0), x * x)
    torch.testing.assert_close(gamma_darken(x, 1.0), x)
    assert PAPER_GAMMAS == (1.0, 2.0, 6.0, 10.0)
    torch.testing.assert_close(GammaDarken(6.0)(x), x**6)


def test_per_image_parameters() -> None:
    x = torch.full((2, 3, 4, 4), 0.5)
    y = darken(x, gamma=torch.tensor([1.0, 2.0]), exposure=torch.tensor([1.0, 0.5]))
    assert torch.allclose(y[0], torch.full_like(y[0], 0.5))
    assert torch.allclose(y[1], torch.full_like(y[1], 0.125))


def test_range_kept_and_exposure_above_one_clips() -> None:
    x = _image()
    y = darken(x, gamma=0.5, exposure=3.0)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert float(y.max()) == 1.0


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(3, 8, 8),  # no batch dim
        torch.rand(1, 1, 8, 8),  # not RGB
        torch.rand(1, 3, 8, 8) + 1.0,  # out of range
        -torch.rand(1, 3, 8, 8) - 0.1,
        torch.randint(0, 255, (1, 3, 8, 8)),  # integer image
        torch.full((1, 3, 4, 4), float("nan")),
    ],
)
def test_bad_input_raises(x: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        darken(x)
    with pytest.raises(ValueError):
        gamma_darken(x, 2.0)


@pytest.mark.parametrize("kw", [{"gamma": 0.0}, {"gamma": -1.0}, {"exposure": 0.0}, {"gamma": math.inf}])
def test_bad_parameters_raise(kw: dict) -> None:
    with pytest.raises(ValueError):
        darken(_image(), **kw)


def test_bad_per_image_parameter_length_raises() -> None:
    with pytest.raises(ValueError):
        darken(_image(b=2), gamma=torch.tensor([1.0, 2.0, 3.0]))


def test_noise_model_validation() -> None:
    with pytest.raises(ValueError):
        NoiseModel(peak=0.0)
    with pytest.raises(ValueError):
        NoiseModel(peak=10.0, read_std=-0.1)


def test_noise_statistics_on_flat_image() -> None:
    level, peak, read_std = 0.3, 50.0, 0.02
    x = torch.full((1, 3, 256, 256), level)
    y = darken(x, noise=NoiseModel(peak=peak, read_std=read_std), generator=torch.Generator().manual_seed(1))
    # Poisson(peak*y)/peak has mean y and variance y/peak; read noise adds read_std^2.
    assert abs(float(y.mean()) - level) < 2e-3
    expected_var = level / peak + read_std**2
    assert abs(float(y.var()) / expected_var - 1.0) < 0.05
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_noise_reproducible_with_generator() -> None:
    x = _image()
    noise = NoiseModel(peak=20.0, read_std=0.01)
    a = darken(x, gamma=2.0, noise=noise, generator=torch.Generator().manual_seed(7))
    b = darken(x, gamma=2.0, noise=noise, generator=torch.Generator().manual_seed(7))
    c = darken(x, gamma=2.0, noise=noise, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_gradcheck_without_noise() -> None:
    g = torch.Generator().manual_seed(3)
    x = (0.1 + 0.8 * torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: darken(t, gamma=2.5, exposure=0.6), (x,))
    assert torch.autograd.gradcheck(lambda t: gamma_darken(t, 0.7), (x,))
    assert torch.autograd.gradcheck(lambda t: Darken(gamma=3.0, exposure=0.4)(t), (x,))


def test_protocol_parameters_in_range_and_log_uniform() -> None:
    protocol = DarkenProtocol(gamma_range=(2.0, 5.0), exposure_range=(0.3, 1.0))
    x = torch.rand(4000, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    y, p = protocol.sample(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert p.gamma.shape == (4000,) and p.exposure.shape == (4000,)
    assert float(p.gamma.min()) >= 2.0 and float(p.gamma.max()) <= 5.0
    assert float(p.exposure.min()) >= 0.3 and float(p.exposure.max()) <= 1.0
    # log-uniform: mean of log gamma is the midpoint of the log range (uniform would give ~1.220).
    assert abs(float(p.gamma.log().mean()) - (math.log(2) + math.log(5)) / 2) < 0.02
    expected = p.exposure.reshape(-1, 1, 1, 1) * x.double() ** p.gamma.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(y, expected.float())


def test_protocol_fixed_range_and_validation() -> None:
    x = _image(b=3)
    y, p = DarkenProtocol(gamma_range=(2.0, 2.0), exposure_range=(0.5, 0.5)).sample(x)
    torch.testing.assert_close(y, darken(x, gamma=2.0, exposure=0.5))
    with pytest.raises(ValueError):
        DarkenProtocol(gamma_range=(5.0, 2.0))
    with pytest.raises(ValueError):
        DarkenProtocol(exposure_range=(0.0, 1.0))


def test_darken_seeded_reproducible_and_order_independent() -> None:
    protocol = DarkenProtocol(noise=NoiseModel(peak=30.0, read_std=0.01))
    x = _image(b=2)
    a, pa = darken_seeded(x, protocol, seed=123, index=[5, 9])
    b, pb = darken_seeded(x, protocol, seed=123, index=[5, 9])
    assert torch.equal(a, b) and torch.equal(pa.gamma, pb.gamma)
    # Reversed batch order: each image keeps its own darkening.
    r, pr = darken_seeded(x.flip(0), protocol, seed=123, index=[9, 5])
    assert torch.equal(r.flip(0), a) and torch.equal(pr.gamma.flip(0), pa.gamma)
    # One image alone gives the same as in a batch.
    single, _ = darken_seeded(x[1:2], protocol, seed=123, index=9)
    assert torch.equal(single, a[1:2])


def test_darken_seeded_differs_by_index_and_seed() -> None:
    protocol = DarkenProtocol(noise=NoiseModel(peak=30.0))
    x = _image(b=1)
    a, pa = darken_seeded(x, protocol, seed=1, index=0)
    b, pb = darken_seeded(x, protocol, seed=1, index=1)
    c, _ = darken_seeded(x, protocol, seed=2, index=0)
    assert not torch.equal(a, b) and float(pa.gamma[0]) != float(pb.gamma[0])
    assert not torch.equal(a, c)


def test_darken_seeded_validation() -> None:
    protocol = DarkenProtocol()
    with pytest.raises(ValueError):
        darken_seeded(_image(b=2), protocol, seed=0, index=3)  # one index for two images
    with pytest.raises(ValueError):
        darken_seeded(_image(b=1), protocol, seed=-1, index=0)
    with pytest.raises(ValueError):
        image_generator(0, -5)


def test_modules_match_functions() -> None:
    x = _image()
    noise = NoiseModel(peak=40.0, read_std=0.005)
    m = Darken(gamma=2.0, exposure=0.7, noise=noise)
    torch.testing.assert_close(
        m(x, generator=torch.Generator().manual_seed(4)),
        darken(x, gamma=2.0, exposure=0.7, noise=noise, generator=torch.Generator().manual_seed(4)),
    )
    protocol = DarkenProtocol()
    torch.testing.assert_close(
        RandomDarken(protocol)(x, generator=torch.Generator().manual_seed(5)),
        protocol.sample(x, torch.Generator().manual_seed(5))[0],
    )

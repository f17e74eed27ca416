"""The engine runs every registered architecture the same way: exact, tiled, auto-tiled, fast, precision."""

from __future__ import annotations

import copy

import pytest
import torch

from sclle.enhancement.api import build_engine
from sclle.enhancement.engine import Engine, EngineConfig, precision_psnr
from sclle.errors import SclleError
from sclle.models.registry import ARCHITECTURES

ARCHS = ARCHITECTURES.names()


def _random_net(arch: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    net = ARCHITECTURES.get(arch)(**kwargs).eval()
    with torch.no_grad():  # default init, plus BatchNorm statistics that are not the identity
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                b.uniform_(-0.1, 0.1)
    return net


def _dark(h: int = 70, w: int = 90, b: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(1)) * 0.4


@pytest.mark.parametrize("arch", ARCHS)
def test_exact_equals_the_released_arithmetic(arch):
    net = _random_net(arch)
    x = _dark(72, 96)
    with torch.no_grad():
        want = net.enhance(x)
    got = Engine(net, EngineConfig(tile=0, channels_last=False))(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-6
    nhwc = Engine(net, EngineConfig(tile=0))(x)  # channels-last on CPU: the same up to float rounding
    assert (nhwc - want).abs().max() <= 1e-4


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("tile", [16, 33])
def test_tiled_and_auto_tiled_equal_untiled_at_full_resolution(arch, tile):
    net = _random_net(arch, scale_factor=1) if arch == "zero-dce++" else _random_net(arch)
    x = _dark(70, 90, b=2)
    whole = Engine(net, EngineConfig(tile=0))(x)
    tiled = Engine(net, EngineConfig(tile=tile))(x)
    auto = Engine(net, EngineConfig(max_untiled_pixels=400))(x)  # forces automatic tiles
    assert (whole - tiled).abs().max() <= 1e-5
    assert (whole - auto).abs().max() <= 1e-5


@pytest.mark.parametrize("arch", [a for a in ARCHS if ARCHITECTURES.get(a).supports_fast])
def test_fast_mode_tiles_the_small_copy_exactly(arch):
    net = _random_net(arch)
    x = _dark(120, 160)
    plain = Engine(net, EngineConfig(fast_scale=0.5, tile=0))(x)
    tiled = Engine(net, EngineConfig(fast_scale=0.5, tile=16))(x)
    with torch.no_grad():
        reference = net.apply(x, net.params_at_scale(x, 0.5))
    assert plain.shape == x.shape
    assert (plain - tiled).abs().max() <= 1e-5
    assert (plain - reference).abs().max() <= 1e-5  # the banded upsample-and-apply is the plain one


@pytest.mark.parametrize("arch", [a for a in ARCHS if not ARCHITECTURES.get(a).supports_fast])
def test_fast_mode_refused_where_unsupported(arch):
    net = _random_net(arch)
    with pytest.raises(ValueError, match="fast mode is not available"):
        Engine(net, EngineConfig(fast_scale=0.5))
    with pytest.raises(SclleError, match="fast mode is not available"):
        build_engine(net, fast_scale=0.5, device="cpu")


@pytest.mark.parametrize("arch", ARCHS)
def test_engine_never_changes_the_callers_network(arch):
    net = _random_net(arch).train()
    before = copy.deepcopy(net.state_dict())
    grads = [p.requires_grad for p in net.parameters()]
    engine = Engine(net, EngineConfig(precision="bf16"))
    engine(_dark(20, 24))
    assert net.training
    assert [p.requires_grad for p in net.parameters()] == grads and any(grads)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert all(p.is_contiguous() for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    out = net.enhance(_dark(20, 24)).mean()
    out.backward()  # the caller can still train it
    assert any(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_strength_zero_is_identity_and_strength_changes_brightness(arch):
    net = _random_net(arch)
    x = _dark(24, 24)
    assert torch.equal(Engine(net, EngineConfig(strength=0.0))(x), x)
    means = [Engine(net, EngineConfig(strength=s))(x).mean().item() for s in (0.0, 1.0)]
    assert means[0] != pytest.approx(means[1], abs=1e-6)


def test_bad_tensors_are_refused_not_clamped():
    net = _random_net("dce-net")
    engine = Engine(net)
    with pytest.raises(ValueError, match="NaN"):
        engine(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        engine(torch.full((1, 3, 8, 8), 1.5))


def test_bf16_keeps_the_stated_fidelity_for_the_bundled_model():
    from sclle.models.registry import load_weights

    net, _ = load_weights(None)
    assert precision_psnr(net, torch.bfloat16, torch.device("cpu")) >= 60.0
    x = _dark(64, 80)
    fp32 = Engine(net, EngineConfig(precision="fp32"))(x)
    bf16 = Engine(net, EngineConfig(precision="bf16"))(x)
    mse = float(((fp32 - bf16) ** 2).mean())
    assert mse > 0 and 10 * torch.log10(torch.tensor(1 / mse)) >= 50  # reduced precision, not fp32 again


def test_auto_precision_falls_back_to_fp32_when_fidelity_is_short(monkeypatch):
    from sclle.enhancement import engine as eng

    net = _random_net("dce-net")
    monkeypatch.setattr(eng, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(eng, "precision_psnr", lambda *a, **k: 40.0)
    assert Engine(net, EngineConfig(precision="auto")).precision == "fp32"
    monkeypatch.setattr(eng, "precision_psnr", lambda *a, **k: 70.0)
    assert Engine(net, EngineConfig(precision="auto")).precision == "bf16"
    monkeypatch.setattr(eng, "cpu_has_native_bf16", lambda: False)
    assert Engine(net, EngineConfig(precision="auto")).precision == "fp32"

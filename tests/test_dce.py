"""DCE-Net: layout, reference forward from the published description, released checkpoints."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from sclle.core.weights import NEGLIGIBLE_WEIGHT
from sclle.models.dce import DCENet, apply_curves, flush_subnormals_
from sclle.models.registry import build_model, read_state_dict, sha256_file

from conftest import shared_path

EXPECTED_SHAPES = {
    "e_conv1.weight": (32, 3, 3, 3),
    **{f"e_conv{i}.weight": (32, 32, 3, 3) for i in (2, 3, 4)},
    **{f"e_conv{i}.weight": (32, 64, 3, 3) for i in (5, 6)},
    "e_conv7.weight": (24, 64, 3, 3),
    **{f"e_conv{i}.bias": (32,) for i in range(1, 7)},
    "e_conv7.bias": (24,),
}


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Written from the paper/README description, independently of DCENet."""

    def conv(i: int, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, sd[f"e_conv{i}.weight"], sd[f"e_conv{i}.bias"], stride=1, padding=1)

    x1 = F.relu(conv(1, x))
    x2 = F.relu(conv(2, x1))
    x3 = F.relu(conv(3, x2))
    x4 = F.relu(conv(4, x3))
    x5 = F.relu(conv(5, torch.cat([x3, x4], 1)))
    x6 = F.relu(conv(6, torch.cat([x2, x5], 1)))
    r = torch.tanh(conv(7, torch.cat([x1, x6], 1)))
    y = x
    for k in range(8):
        rk = r[:, 3 * k : 3 * k + 3]
        y = y + rk * (y.pow(2) - y)
    return y.clamp(0, 1)


def test_layout_and_param_count():
    net = DCENet()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == EXPECTED_SHAPES
    assert sum(p.numel() for p in net.parameters()) == 79416


def test_forward_matches_reference():
    torch.manual_seed(0)
    net = DCENet()
    x = torch.rand(2, 3, 21, 17)
    assert torch.allclose(net.enhance(x), reference_forward(net.state_dict(), x), atol=1e-6)
    assert net(x).shape == (2, 24, 21, 17)


def test_apply_curves_exact_small_values():
    x = torch.full((1, 3, 1, 1), 0.5)
    r = torch.zeros(1, 24, 1, 1)
    r[:, :3] = -1.0  # one step with r=-1: 0.5 + (-1)(0.25 - 0.5) = 0.75
    assert torch.allclose(apply_curves(x, r), torch.full_like(x, 0.75))
    r[:, 3:6] = -1.0  # second step: 0.75 + (-1)(0.5625 - 0.75) = 0.9375
    assert torch.allclose(apply_curves(x, r), torch.full_like(x, 0.9375))
    assert torch.equal(apply_curves(x, torch.zeros(1, 24, 1, 1)), x)


def test_apply_curves_shape_errors():
    import pytest

    with pytest.raises(ValueError, match="curve_maps"):
        apply_curves(torch.rand(1, 3, 4, 4), torch.rand(1, 21, 4, 4))
    with pytest.raises(ValueError, match="image"):
        apply_curves(torch.rand(1, 4, 4, 4), torch.rand(1, 24, 4, 4))
    with pytest.raises(ValueError, match="do not match"):
        apply_curves(torch.rand(1, 3, 4, 4), torch.rand(1, 24, 4, 5))


def test_apply_curves_gradcheck():
    x = (torch.rand(1, 3, 2, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    r = (torch.rand(1, 24, 2, 2, dtype=torch.float64) * 0.5 - 0.25).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: apply_curves(a, b, clamp=False), (x, r))


def test_flush_subnormals_counts_and_is_exact():
    net = DCENet()
    with torch.no_grad():
        net.e_conv2.weight[0, 0, 0, 0] = 1e-40  # subnormal in float32
        net.e_conv2.weight[0, 0, 0, 1] = -5e-42
    x = torch.rand(1, 3, 16, 16)
    before = net.enhance(x)
    assert flush_subnormals_(net) == 2
    assert net.e_conv2.weight[0, 0, 0, 0] == 0
    assert torch.equal(before, net.enhance(x))


def test_negligible_weights_are_flushed_on_load_with_identical_output():
    """Tiny normal weights (dead channels decayed to ~1e-33) make subnormal products: zeroed on load."""
    torch.manual_seed(0)
    net = DCENet()
    with torch.no_grad():
        net.e_conv3.weight[:4] = 3e-33  # a decayed channel: normal floats, far below any activation
        net.e_conv5.weight[0, 0, 0, 0] = -2e-31
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    assert flush_subnormals_(copy.deepcopy(net)) == 0  # not subnormal: the default leaves them
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        before = net.enhance(x)
        loaded = build_model(sd)
        after = loaded.enhance(x)
    assert int((loaded.e_conv3.weight[:4] != 0).sum()) == 0 and loaded.e_conv5.weight[0, 0, 0, 0] == 0
    assert torch.equal(before, after)
    assert flush_subnormals_(net, below=NEGLIGIBLE_WEIGHT) == 4 * 32 * 9 + 1


def _released(name: str, sha: str):
    p = shared_path("weights", name)
    assert sha256_file(p) == sha
    return read_state_dict(p)


def test_released_checkpoints_load_strictly_and_flush_is_bit_identical():
    cases = {
        "SCL-LLE.pth": ("fc5aa74a6674bb747b325e5a06efbfea2973c10cc93cf25cd2b8f33a038e821f", 41669),
        "ZeroDCE-Epoch99.pth": ("a4395acb874f320375d9704997cef874eaaaaa26a1777ceb29a92b70f74c3612", 19266),
    }
    torch.manual_seed(1)
    x = torch.rand(1, 3, 40, 56) * 0.4
    for name, (sha, n_sub) in cases.items():
        sd = _released(name, sha)
        assert {k: tuple(v.shape) for k, v in sd.items()} == EXPECTED_SHAPES
        raw = DCENet()
        raw.load_state_dict(sd, strict=True)
        assert flush_subnormals_(raw) == n_sub
        raw2 = DCENet()
        raw2.load_state_dict(sd, strict=True)
        flushed = build_model(sd)
        with torch.no_grad():
            assert torch.equal(raw2.enhance(x), flushed.enhance(x))
            assert torch.allclose(flushed.enhance(x), reference_forward(sd, x), atol=1e-6)
            assert flushed.enhance(x).mean() > x.mean() + 0.1  # they brighten


def test_lean_inference_equals_forward_and_leaves_input_alone():
    """``infer`` (the engine's forward without concatenations) gives forward's curves, also channels-last."""
    torch.manual_seed(3)
    net = DCENet().eval()
    for p in net.parameters():
        p.data.normal_(0, 0.1)  # non-trivial weights: the halves of each concatenated layer both matter
    x = torch.rand(2, 3, 23, 31)
    keep = x.clone()
    with torch.inference_mode():
        ref = net(x)
        lean = net.infer(x)
        cl = net.to(memory_format=torch.channels_last).infer(x.contiguous(memory_format=torch.channels_last))
    assert lean.shape == ref.shape == (2, 24, 23, 31)
    assert torch.allclose(lean, ref, atol=1e-5, rtol=0)  # pre-tanh values reach ~10: float32 sum order
    assert torch.allclose(cl, ref, atol=1e-5, rtol=0)
    assert torch.equal(x, keep)
    # the split really is a split: zeroing either half of conv5's weight changes the result
    with torch.inference_mode():
        net.e_conv5.weight[:, 32:] = 0
        assert not torch.allclose(net.infer(x), ref, atol=1e-4)

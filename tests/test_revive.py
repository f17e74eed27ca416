"""Reviving dead DCE-Net channels (sclle.train.revive): same output, fresh weights, trainable again."""

from __future__ import annotations

import pytest
import torch

from sclle.models.dce import DCENet
from sclle.train.revive import revive_dead_channels


def _checkpoint() -> tuple[DCENet, dict]:
    torch.manual_seed(0)
    net = DCENet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(1, 3, 16, 16)).square().mean().backward()
    opt.step()
    with torch.no_grad():
        net.e_conv4.weight[3:6] = 0.0  # dead: no incoming weights...
        net.e_conv4.bias[3:5] = -0.1  # ...and silent (ReLU of a negative constant)
        net.e_conv4.bias[5] = 0.2  # a constant map, read by conv5 as a bias: must be left alone
        net.e_conv2.weight[7] = 0.0
        net.e_conv2.bias[7] = 0.3
        net.e_conv3.weight[:, 7] = 0.0  # constant but unread by conv3...
        net.e_conv6.weight[:, 7] = 0.0  # ...and by conv6: revivable
    ckpt = {"model": {k: v.clone() for k, v in net.state_dict().items()}, "optimizer": opt.state_dict()}
    return net, ckpt


def test_revive_keeps_the_output_and_redraws_only_dead_channels():
    net, ckpt = _checkpoint()
    done = revive_dead_channels(ckpt, seed=1)
    assert done["e_conv4"] == [3, 4] and done["e_conv2"] == [7]
    assert all(not v for k, v in done.items() if k not in ("e_conv2", "e_conv4"))
    sd = ckpt["model"]
    assert (sd["e_conv4.weight"][3:5].abs().amax(dim=(1, 2, 3)) > 0).all()
    assert torch.equal(sd["e_conv4.bias"][3:5], torch.zeros(2))
    assert torch.equal(sd["e_conv4.weight"][5], torch.zeros_like(sd["e_conv4.weight"][5]))  # the constant
    assert torch.equal(sd["e_conv5.weight"][:, 32 + 3 : 32 + 5], torch.zeros(32, 2, 3, 3))  # readers zeroed
    state = ckpt["optimizer"]["state"]
    assert torch.equal(state[6]["exp_avg"][3:5], torch.zeros_like(state[6]["exp_avg"][3:5]))  # e_conv4.weight
    assert state[6]["exp_avg"][0].abs().sum() > 0  # live channels keep their moments
    # second moments of redrawn entries: the tensor's typical value, so Adam's first steps stay ~lr-sized
    before = _checkpoint()[1]["optimizer"]["state"][6]["exp_avg_sq"]
    assert torch.allclose(
        state[6]["exp_avg_sq"][3:5], before[[0, 1, 2, *range(5, 32)]].mean().expand(2, 32, 3, 3)
    )
    assert torch.equal(state[6]["exp_avg_sq"][0], before[0])
    revived = DCENet()
    revived.load_state_dict(sd)
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(revived(x), net(x))


def test_revived_channels_get_gradient_through_their_readers():
    _, ckpt = _checkpoint()
    revive_dead_channels(ckpt, seed=1)
    net = DCENet()
    net.load_state_dict(ckpt["model"])
    net(torch.rand(1, 3, 24, 24)).square().mean().backward()
    assert net.e_conv5.weight.grad[:, 32 + 3 : 32 + 5].abs().sum() > 0  # readers grow first (ReDo)


def test_tiny_but_live_channels_are_not_revived():
    """Weights of 1e-8 with a zero bias still pass a (tiny) signal: not dead at the default eps."""
    net, ckpt = _checkpoint()
    ckpt["model"]["e_conv3.weight"][9] = 1e-8
    ckpt["model"]["e_conv3.bias"][9] = 0.0
    done = revive_dead_channels(ckpt, seed=1)
    assert 9 not in done["e_conv3"]


def test_a_revival_that_would_move_the_output_is_refused_and_changes_nothing():
    _, ckpt = _checkpoint()
    ckpt["model"]["e_conv3.weight"][9] = 1e-3  # "dead" only at an absurd eps; a live signal read by conv4
    ckpt["model"]["e_conv3.bias"][9] = 0.0
    original = {k: v.clone() for k, v in ckpt["model"].items()}
    with pytest.raises(ValueError, match="change the curve maps"):
        revive_dead_channels(ckpt, eps=1e-2, seed=1)
    assert all(torch.equal(ckpt["model"][k], v) for k, v in original.items())


def test_other_widths_use_their_own_channel_offsets():
    torch.manual_seed(0)
    net = DCENet(width=8)
    with torch.no_grad():
        net.e_conv4.weight[2] = 0.0
        net.e_conv4.bias[2] = -0.1
    ckpt = {"model": {k: v.clone() for k, v in net.state_dict().items()}}
    done = revive_dead_channels(ckpt, seed=1)
    assert done["e_conv4"] == [2]
    assert torch.equal(ckpt["model"]["e_conv5.weight"][:, 8 + 2], torch.zeros(8, 3, 3))
    revived = DCENet(width=8)
    revived.load_state_dict(ckpt["model"])
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(revived(x), net(x))

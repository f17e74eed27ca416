"""The methods registry: names, labels, modes, clear errors."""

from __future__ import annotations

import pytest
import torch

from sclle.enhancement.methods import get_method, list_methods
from sclle.errors import SclleError
from sclle.models.dce import DCENet


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    p = tmp_path / "mine.pth"
    torch.save(DCENet().state_dict(), p)
    return p


def test_identity_and_baselines():
    x = torch.rand(1, 3, 16, 16) * 0.2
    assert torch.equal(get_method("input")(x), x) and torch.equal(get_method("none")(x), x)
    for name in ("gamma", "he", "clahe"):
        m = get_method(name)
        assert m.kind == "baseline" and m(x).shape == x.shape and m.fingerprint
    assert {"input", "gamma", "lime", "msrcr", "scl-lle-official"} <= set(list_methods())


def test_checkpoint_path_label_and_fast_mode(ckpt):
    exact = get_method(str(ckpt))
    labelled = get_method(f"ours={ckpt}")
    fast = get_method(f"ours={ckpt}@fast=0.25")
    assert labelled.name == "ours" and labelled.kind == "model"
    assert fast.fingerprint != exact.fingerprint  # results caches must not mix modes
    x = torch.rand(1, 3, 32, 40)
    assert torch.equal(exact(x), labelled(x))
    y = fast(x)
    assert y.shape == x.shape and not torch.equal(y, exact(x))  # the mode reaches the engine


def test_unknown_and_bad_mode(ckpt):
    with pytest.raises(SclleError, match="known: .*input"):
        get_method("no-such-method")
    with pytest.raises(SclleError, match="bad method mode"):
        get_method(f"{ckpt}@slow")

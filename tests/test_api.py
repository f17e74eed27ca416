"""`sclle.enhance()` returns the kind it was given; `load_model` by name or path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import sclle
from sclle.models.dce import DCENet


@pytest.fixture
def weights(dce_weights):
    return dce_weights


def test_tensor_in_tensor_out(weights):
    x = torch.rand(2, 3, 16, 20, dtype=torch.float64) * 0.3
    y = sclle.enhance(x, str(weights), device="cpu")
    assert isinstance(y, torch.Tensor) and y.shape == x.shape and y.dtype == x.dtype
    assert y.mean() > x.mean()
    assert torch.equal(sclle.enhance(x, str(weights), strength=0.0, device="cpu"), x)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_numpy_kinds(weights, dtype):
    rng = np.random.default_rng(0)
    base = rng.random((12, 10, 3)) * 0.25
    arr = base.astype(dtype) if dtype == np.float32 else (base * np.iinfo(dtype).max).astype(dtype)
    out = sclle.enhance(arr, str(weights), device="cpu")
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert out.astype(float).mean() > arr.astype(float).mean()
    gray = arr[..., 0]
    assert sclle.enhance(gray, str(weights), device="cpu").shape == gray.shape


def test_pil_modes_and_path(weights, tmp_path):
    rgba = Image.fromarray((np.random.default_rng(1).random((9, 11, 4)) * 80).astype(np.uint8), "RGBA")
    out = sclle.enhance(rgba, str(weights), device="cpu")
    assert out.mode == "RGBA" and out.size == rgba.size
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])
    gray = rgba.convert("L")
    assert sclle.enhance(gray, str(weights), device="cpu").mode == "L"
    p = tmp_path / "x.png"
    rgba.convert("RGB").save(p)
    res = sclle.enhance(p, str(weights), device="cpu", fast_scale=0.5)
    assert isinstance(res, Image.Image) and res.size == rgba.size


def test_bad_input_type(weights):
    with pytest.raises(TypeError, match="cannot enhance"):
        sclle.enhance([1, 2, 3], str(weights), device="cpu")


def test_load_model_and_list_models(weights):
    net = sclle.load_model(str(weights))
    assert isinstance(net, DCENet) and not net.training
    names = [e.name for e in sclle.list_models()]
    assert "scl-lle-official" in names

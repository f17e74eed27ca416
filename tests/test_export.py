"""Export: ONNX (run with onnxruntime) and TorchScript match PyTorch at other sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sclle.models.dce import DCENet
from sclle.models.export import EnhancerGraph, export_model


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DCENet().eval()


@pytest.mark.slow
def test_onnx_matches_pytorch_with_dynamic_size(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_model(net, tmp_path / "m.onnx", format="onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 96), (2, 3, 37, 151)]:
        x = torch.rand(*shape)
        (y,) = sess.run(None, {"image": x.numpy()})
        with torch.no_grad():
            ref = EnhancerGraph(net)(x).numpy()
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() <= 1e-4


def test_torchscript_matches_pytorch_with_dynamic_size(net, tmp_path):
    path = export_model(net, tmp_path / "m.pt", format="torchscript")
    m = torch.jit.load(str(path))
    x = torch.rand(1, 3, 45, 29)
    with torch.no_grad():
        assert torch.allclose(m(x), EnhancerGraph(net)(x), atol=1e-6)


def test_unknown_format_leaves_no_file(net, tmp_path):
    from sclle.errors import SclleError

    with pytest.raises(SclleError, match="unknown export format"):
        export_model(net, tmp_path / "m.xyz", format="xyz")
    assert list(tmp_path.iterdir()) == []

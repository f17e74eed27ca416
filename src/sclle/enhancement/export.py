"""Export an enhancer (network + curve application, image in -> image out) to ONNX or TorchScript.

Height and width are dynamic in both formats; the batch dimension is dynamic in ONNX too.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from sclle.errors import SclleError
from sclle.models.dce import DCENet, apply_curves


class EnhancerGraph(nn.Module):
    """``x -> apply_curves(x, net(x))`` as one module, for export."""

    def __init__(self, net: DCENet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_curves(x, self.net(x))


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    return Path(tmp)


def export_model(net: DCENet, path: str | Path, *, format: str = "onnx", opset: int = 18) -> Path:
    """Write ``net`` as an ONNX file (input ``image``, output ``enhanced``) or a TorchScript module."""
    path = Path(path)
    graph = EnhancerGraph(net).eval()
    example = torch.rand(1, 3, 64, 96)
    tmp = _atomic_target(path)
    try:
        if format == "onnx":
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise SclleError(
                    "ONNX export needs the optional packages: pip install 'sclle[export]'"
                ) from None
            b, h, w = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=["image"],
                output_names=["enhanced"],
                dynamic_shapes={"x": {0: b, 2: h, 3: w}},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        elif format == "torchscript":
            # Tracing is exact here: the graph has no data-dependent control flow, and convolutions
            # and the curve steps are size-agnostic, so the traced module accepts any H and W.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(graph, example, check_trace=False)
            traced.save(str(tmp))
        else:
            raise SclleError(f"unknown export format {format!r}; use onnx or torchscript")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

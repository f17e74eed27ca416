"""Export an enhancer (network + apply step, image in -> image out) to ONNX or TorchScript.

Any registered architecture exports in its released arithmetic (:meth:`Enhancer.enhance`, native scale
included). Height and width are dynamic in both formats; the batch dimension is dynamic in ONNX too.
The written ONNX file is run once with onnxruntime (when installed) and compared with PyTorch before
it is kept, so a file that would give different or non-finite images is never left behind.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from sclle.core.files import atomic_save
from sclle.core.weights import check_finite
from sclle.errors import SclleError
from sclle.models.base import Enhancer

#: Opsets the exporter writes as asked (older ones it silently upgrades).
ONNX_OPSETS = range(18, 24)
FORMATS = ("onnx", "torchscript")


class EnhancerGraph(nn.Module):
    """``x -> net.enhance(x)`` as one module, for export."""

    def __init__(self, net: Enhancer) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.enhance(x)


def _check_onnx(path: Path, graph: nn.Module, opset: int) -> None:
    import onnx

    model = onnx.load(str(path))
    written = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    if written != opset:
        raise SclleError(f"the exporter wrote opset {written}, not the {opset} asked for", path)
    try:
        import onnxruntime as ort
    except ImportError:
        return
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0)) * 0.4
    try:  # a graph that loads but cannot run the check's size (e.g. a shape frozen by tracing) is refused
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    except Exception as exc:  # onnxruntime raises its own untyped errors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SclleError(
            f"exported model does not run in onnxruntime ({reason}); not written", path
        ) from None
    with torch.inference_mode():
        want = graph(x).numpy()
    import numpy as np

    if not np.isfinite(got).all() or float(np.abs(got - want).max()) > 1e-3:
        raise SclleError("exported model does not reproduce PyTorch's output; not written", path)


def export_model(net: Enhancer, path: str | Path, *, format: str = "onnx", opset: int = 18) -> Path:
    """Write ``net`` as an ONNX file (input ``image``, output ``enhanced``) or a TorchScript module."""
    path = Path(path)
    if format not in FORMATS:
        raise SclleError(f"unknown export format {format!r}; use {' or '.join(FORMATS)}")
    if format == "onnx" and opset not in ONNX_OPSETS:
        raise SclleError(f"ONNX opset {opset} not supported; use {ONNX_OPSETS.start}..{ONNX_OPSETS.stop - 1}")
    check_finite(net.state_dict(), path)
    if path.is_dir():
        raise SclleError("is a folder; give the file to write", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SclleError(f"cannot create the folder: {exc.strerror or exc}", path.parent) from None
    graph = EnhancerGraph(net).eval()
    example = torch.rand(1, 3, 64, 96)

    def write(tmp: Path) -> None:
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
            _check_onnx(tmp, graph, opset)
        else:
            # Tracing is exact here: the graph has no data-dependent control flow, and convolutions
            # and the apply steps are size-agnostic, so the traced module accepts any H and W.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(graph, example, check_trace=False)
            traced.save(str(tmp))

    try:
        return atomic_save(path, write)
    except PermissionError:
        raise SclleError("cannot write here: permission denied", path) from None
    except OSError as exc:
        raise SclleError(f"cannot write: {exc.strerror or exc}", path) from None

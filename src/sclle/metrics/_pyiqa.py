"""Optional backend: metrics of the ``pyiqa`` package (IQA-PyTorch) under names ``pyiqa:<name>``.

pyiqa is not a dependency: it has a non-commercial licence and downloads model weights on first
use, so it is opt-in (``pip install 'sclle[iqa]'``) and imported only when such a name is created.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from sclle.errors import SclleError
from sclle.metrics._common import check_image, check_pair

PREFIX = "pyiqa:"


def import_pyiqa(metric: str):
    """Import pyiqa or raise a one-line SclleError saying how to get it."""
    try:
        return importlib.import_module("pyiqa")
    except ImportError:
        raise SclleError(
            f"metric {metric} needs the optional package pyiqa "
            "(pip install 'sclle[iqa]'; non-commercial licence, downloads its weights)"
        ) from None


class PyiqaMetric(nn.Module):
    """Adapter giving a pyiqa metric this package's conventions: checked inputs, (B,) float tensor out."""

    def __init__(self, name: str, **kwargs) -> None:
        super().__init__()
        metric_name = name[len(PREFIX) :] if name.startswith(PREFIX) else name
        pyiqa = import_pyiqa(PREFIX + metric_name)
        try:
            self.inner = pyiqa.create_metric(metric_name, as_loss=False, **kwargs)
        except Exception as exc:  # pyiqa raises assorted errors for unknown names / failed downloads
            msg = " ".join(str(exc).split())
            raise SclleError(f"pyiqa could not create metric {metric_name!r}: {msg}") from exc
        self.name = PREFIX + metric_name
        self.lower_is_better = bool(getattr(self.inner, "lower_better", False))
        self.kind = "fr" if str(getattr(self.inner, "metric_mode", "NR")).upper() == "FR" else "nr"

    @torch.no_grad()
    def forward(self, image: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "fr":
            if reference is None:
                raise ValueError(f"{self.name} is full-reference: call it as metric(image, reference)")
            check_pair(image, reference)
            out = self.inner(image, reference)
        else:
            check_image(image)
            out = self.inner(image)
        return torch.as_tensor(out).reshape(-1).to(image.device)

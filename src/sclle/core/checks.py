"""Boundary checks, one place (kornia's ``KORNIA_CHECK_*`` is the model).

Inside sclle every image is a float (B, 3, H, W) tensor in [0, 1], RGB. These checks run where data
enters (API calls, metrics, losses) and raise ``ValueError`` with the caller's ``name`` in the message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def check_shape(x: object, shape: Sequence[str | int], name: str = "input") -> None:
    """Check ``x`` is a tensor whose shape matches ``shape``: ints must match, strings are free
    (``"B"``, ``"H"``), ``"*"`` first allows any leading dimensions. ``check_shape(x, ["B", 3, "H", "W"])``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    dims = list(shape)
    actual = tuple(x.shape)
    if dims and dims[0] == "*":
        dims = dims[1:]
        ok = len(actual) >= len(dims)
        tail = actual[len(actual) - len(dims) :] if ok else ()
    else:
        ok = len(actual) == len(dims)
        tail = actual
    ok = ok and all(not isinstance(d, int) or d == a for d, a in zip(dims, tail, strict=False))
    if not ok:
        want = "(" + ", ".join(str(d) for d in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {actual}")


def check_float(x: torch.Tensor, name: str = "input") -> None:
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor in [0, 1], got dtype {x.dtype}")


def check_range(x: torch.Tensor, name: str = "input", lo: float = 0.0, hi: float = 1.0) -> None:
    """Finite and within ``[lo, hi]``; empty tensors pass."""
    if x.numel() == 0:
        return
    # one pass, no temporary the size of x (an 8000x6000 image's isfinite mask alone is 144 MB): min and
    # max propagate NaN, and an inf is its own min or max
    mn_t, mx_t = torch.aminmax(x.detach())
    mn, mx = float(mn_t), float(mx_t)
    if not (math.isfinite(mn) and math.isfinite(mx)):
        raise ValueError(f"{name}: contains NaN or inf")
    if mn < lo or mx > hi:
        raise ValueError(f"{name}: expected values in [{lo:g}, {hi:g}], got range [{mn:.4g}, {mx:.4g}]")


def check_image(x: object, name: str = "image", *, values: bool = True) -> None:
    """A float (B, 3, H, W) batch; with ``values`` also finite and in [0, 1]."""
    check_shape(x, ["B", 3, "H", "W"], name)
    assert isinstance(x, torch.Tensor)
    check_float(x, name)
    if values:
        check_range(x, name)

"""Zero-DCE++ (Li, Guo & Loy, TPAMI 2021): DCE-Net made light, one curve map, estimated at 1/12 scale.

Written from the description of the authors' release (the layer names match their ``Epoch99.pth``, so it
loads ``strict``): seven depthwise-separable 3x3 layers of 32 channels with DCE-Net's skip concatenations,
ReLU after layers 1-6 and tanh after 7, giving **one** 3-channel curve map ``r`` that is applied 8 times
(``x <- x + r (x^2 - x)``). The released test script runs the network on a bilinear 1/12 copy (no
antialiasing), upsamples ``r`` with ``align_corners=True`` and first crops H and W down to multiples of 12;
``crop=True`` reproduces that crop, the default keeps the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sclle.core.weights import WeightsEntry
from sclle.errors import SclleError
from sclle.models.base import Enhancer, build, scale_curves

N_ITERATIONS = 8
#: Seven 3x3 (depthwise) convs, each adds one pixel of context at the resolution the network runs at.
RECEPTIVE_FIELD_RADIUS = 7


class _SeparableConv(nn.Module):
    """A 3x3 depthwise conv (bias) then a 1x1 pointwise conv (bias): keys ``depth_conv`` / ``point_conv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels)
        self.point_conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class ZeroDCEPP(Enhancer):
    """Zero-DCE++ (10,561 parameters). ``forward(x)`` is the (B, 3, h, w) curve map at ``x``'s resolution.

    Args:
        scale_factor: the network runs at ``1 / scale_factor`` in :meth:`enhance` (12 as released; 1 = full).
        crop: crop H and W down to multiples of ``scale_factor`` in :meth:`enhance`, as the released test
            script does (the output is then smaller than the input); off by default.
        iterations: how many times the single curve map is applied (8 as released).
    """

    arch = "zero-dce++"
    family = "curves"
    receptive_radius = RECEPTIVE_FIELD_RADIUS
    supports_fast = True
    upsample_align_corners = True

    def __init__(
        self, scale_factor: int = 12, crop: bool = False, iterations: int = N_ITERATIONS, width: int = 32
    ):
        super().__init__()
        if scale_factor < 1:
            raise ValueError(f"scale_factor must be >= 1, got {scale_factor}")
        self.scale_factor = int(scale_factor)
        self.native_scale = 1.0 / self.scale_factor if self.scale_factor > 1 else None
        self.crop = crop
        self.iterations = iterations
        self.curve_repeats = iterations  # the engine's banded fast path applies each map this often
        w = width
        self.e_conv1 = _SeparableConv(3, w)
        self.e_conv2 = _SeparableConv(w, w)
        self.e_conv3 = _SeparableConv(w, w)
        self.e_conv4 = _SeparableConv(w, w)
        self.e_conv5 = _SeparableConv(2 * w, w)
        self.e_conv6 = _SeparableConv(2 * w, w)
        self.e_conv7 = _SeparableConv(2 * w, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))

    def apply(self, x: torch.Tensor, params: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
        """The shared curve map applied ``iterations`` times (a loop: no 8x copy of a full-size map)."""
        r = scale_curves(params, strength)
        for _ in range(self.iterations):
            x = x + r * (x * x - x)
        return x.clamp(0.0, 1.0)

    def downscale(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """As released: ``scale_factor`` resampling (sizes floored), bilinear, no antialiasing."""
        h, w = x.shape[-2:]
        if int(h * scale) < 1 or int(w * scale) < 1:
            raise SclleError(f"image of {h}x{w} px is too small for Zero-DCE++ at scale {scale:g}")
        return F.interpolate(x, scale_factor=scale, mode="bilinear")

    def enhance(self, x: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
        """The released arithmetic at ``native_scale``; with ``crop`` first the released top-left crop."""
        if self.crop:
            x = crop_to_multiple(x, self.scale_factor)
        return super().enhance(x, strength=strength)

    def test_time_parameters(self) -> int:
        """Parameters that run at test time (all of them: 10,561 as released)."""
        return sum(p.numel() for p in self.parameters())


def crop_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Top-left crop of H and W down to multiples of ``multiple`` (the released test script's crop)."""
    h, w = x.shape[-2:]
    hc, wc = h // multiple * multiple, w // multiple * multiple
    if hc == 0 or wc == 0:
        raise SclleError(f"image of {h}x{w} px is smaller than the {multiple}-pixel crop of Zero-DCE++")
    return x[..., :hc, :wc]


def zero_dce_pp(*, weights: WeightsEntry | None = None, progress: bool = True, **kwargs) -> ZeroDCEPP:
    """Zero-DCE++, optionally with registered weights (``zero-dce++-official``)."""
    return build(ZeroDCEPP, weights, progress=progress, **kwargs)  # type: ignore[return-value]


WEIGHTS: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="zero-dce++-official",
        sha256="ca8855b90df9a80fa4195a831f33d3476b1964f787eb70602797c773067f3b84",
        file_name="zero-dce++-official-ca8855b9.pth",
        arch="zero-dce++",
        url="https://github.com/Li-Chongyi/Zero-DCE_extension/raw/main/Zero-DCE++/snapshots_Zero_DCE++/Epoch99.pth",
        # The authors' own name, Epoch99.pth, is Zero-DCE's too: not an alias (a wrong file would stop the lookup).
        aliases=("ZeroDCEpp-Epoch99.pth",),
        meta={
            "params": 10561,
            "source": "Li, Guo & Loy, Learning to Enhance Low-Light Image via Zero-Reference Deep Curve "
            "Estimation, TPAMI 2021 (authors' release, repository Li-Chongyi/Zero-DCE_extension, "
            "Zero-DCE++/snapshots_Zero_DCE++/Epoch99.pth)",
            "licence": "CC BY-NC 4.0 (non-commercial research use)",
            "research_only": True,
            "training_data": "SICE Part1 multi-exposure sequences (the repository's Zero-DCE++/data/train_data)",
            "fast_scale": 1 / 12,
        },
    ),
)

"""DCE-Net, the curve-estimation enhancer of Zero-DCE and SCL-LLE.

The layer names (``e_conv1`` .. ``e_conv7``) match the authors' released checkpoints so that their
``state_dict`` files load with ``strict=True``. The network only *predicts* curve maps; applying
them is :func:`apply_curves`, shared by every execution mode (exact, fast, tiled, export).
"""

from __future__ import annotations

import torch
from torch import nn

N_ITERATIONS = 8
#: Each 3x3 conv adds 1 pixel of context; 7 convs -> 7 px receptive-field radius.
RECEPTIVE_FIELD_RADIUS = 7


def apply_curves(image: torch.Tensor, curve_maps: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """Apply the 8 light-enhancement curves ``x <- x + r_k (x^2 - x)`` to ``image``.

    Args:
        image: (B, 3, H, W) in [0, 1].
        curve_maps: (B, 24, H, W), 8 maps of 3 channels in [-1, 1]. The released weights use
            this sign convention (a *negative* ``r`` brightens); the paper writes ``x + A x (1 - x)``.
        clamp: clamp the result to [0, 1] (on by default; the curve keeps [0, 1] for |r| <= 1 anyway,
            the clamp only removes float rounding).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    if curve_maps.ndim != 4 or curve_maps.shape[1] != 3 * N_ITERATIONS:
        raise ValueError(f"curve_maps must be (B, 24, H, W), got {tuple(curve_maps.shape)}")
    if curve_maps.shape[0] != image.shape[0] or curve_maps.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"curve_maps {tuple(curve_maps.shape)} do not match image {tuple(image.shape)}")
    x = image
    for r in torch.split(curve_maps, 3, dim=1):
        x = x + r * (x * x - x)
    return x.clamp(0.0, 1.0) if clamp else x


class ApplyCurves(nn.Module):
    """Module twin of :func:`apply_curves`."""

    def __init__(self, clamp: bool = True) -> None:
        super().__init__()
        self.clamp = clamp

    def forward(self, image: torch.Tensor, curve_maps: torch.Tensor) -> torch.Tensor:
        return apply_curves(image, curve_maps, clamp=self.clamp)


class DCENet(nn.Module):
    """Deep Curve Estimation network (79,416 parameters).

    ``forward(x)`` returns the (B, 24, H, W) curve maps; use :meth:`enhance` (or
    :func:`apply_curves`) for the enhanced image. Keeping the two apart lets fast mode estimate
    curves on a small copy and apply them at full resolution.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.e_conv1 = nn.Conv2d(3, w, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(w, w, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(w, w, 3, 1, 1)
        self.e_conv4 = nn.Conv2d(w, w, 3, 1, 1)
        self.e_conv5 = nn.Conv2d(2 * w, w, 3, 1, 1)
        self.e_conv6 = nn.Conv2d(2 * w, w, 3, 1, 1)
        self.e_conv7 = nn.Conv2d(2 * w, 3 * N_ITERATIONS, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))

    def enhance(self, x: torch.Tensor) -> torch.Tensor:
        """Curves estimated and applied at the input's resolution (the released arithmetic)."""
        return apply_curves(x, self(x))


def flush_subnormals_(module: nn.Module) -> int:
    """Replace subnormal float parameters by zero, in place; return how many were replaced.

    The released checkpoints hold tens of thousands of subnormal weights (41,669 in SCL-LLE.pth).
    x86 CPUs handle subnormals in microcode, which makes convolutions ~30x slower; their
    contribution is below float32 resolution of any activation, so zeroing them gives
    bit-identical outputs.
    """
    n = 0
    with torch.no_grad():
        for p in module.parameters():
            if not p.is_floating_point():
                continue
            tiny = torch.finfo(p.dtype).tiny
            mask = (p != 0) & (p.abs() < tiny)
            k = int(mask.sum())
            if k:
                p.masked_fill_(mask, 0.0)
                n += k
    return n

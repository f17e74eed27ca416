"""SCI, self-calibrated illumination (Ma et al., CVPR 2022): a 258-parameter illumination estimator.

Written from the description of the authors' release; the module names follow their ``weights/*.pt``
so the files load ``strict``. At test time only ``enhance`` runs::

    f = ReLU(in_conv(x));  f = f + ReLU(BN(conv(f)));  i = clamp(sigmoid(out_conv(f)) + x, 1e-4, 1)

and the output is ``clamp(x / i, 0, 1)``. The residual block's conv *is* ``enhance.conv`` (the file stores
it under both ``enhance.conv.*`` and ``enhance.blocks.0.*``, one storage); here too it is one module
registered under both names, and a file whose two copies differ is refused. ``calibrate.*`` is the
training-time self-calibration module: its layers are registered so every key of the release is
consumed (strict loading), but it never runs, and its parameters are not counted as the model's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sclle.core.weights import WeightsEntry
from sclle.errors import WeightsError
from sclle.models.base import Enhancer, build, retinex_divide

#: in_conv, the block's conv and out_conv are 3x3; everything else is per pixel.
RECEPTIVE_FIELD_RADIUS = 3
ILLUMINATION_MIN = 1e-4


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU())


class _Illumination(nn.Module):
    """The test-time illumination network (``enhance.*`` in the release)."""

    def __init__(self, channels: int = 3, layers: int = 1) -> None:
        super().__init__()
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU())
        self.conv = _conv_bn_relu(channels, channels)
        # The same module every step (weights shared), as released.
        self.blocks = nn.ModuleList([self.conv] * layers)
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.in_conv(x)
        for block in self.blocks:
            f = f + block(f)
        return (self.out_conv(f) + x).clamp(ILLUMINATION_MIN, 1.0)


class _CalibrateLayout(nn.Module):
    """The key layout of the training-only ``calibrate.*`` module (never run here; see the module doc)."""

    def __init__(self, channels: int = 16, layers: int = 3) -> None:
        super().__init__()
        self.in_conv = _conv_bn_relu(3, channels)
        self.convs = nn.Sequential(*_conv_bn_relu(channels, channels), *_conv_bn_relu(channels, channels))
        self.blocks = nn.ModuleList([self.convs] * layers)
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())


class SCI(Enhancer):
    """SCI at test time. ``forward(x)`` is the illumination ``i``; :meth:`apply` divides by ``i ** strength``."""

    arch = "sci"
    family = "retinex"
    receptive_radius = RECEPTIVE_FIELD_RADIUS
    supports_fast = False

    def __init__(self, channels: int = 3, layers: int = 1) -> None:
        super().__init__()
        # Registered as "enhance" (the release's key prefix); as an attribute that name is the method
        # `Enhancer.enhance`, so the network is reached through `illumination_net`.
        self._modules["enhance"] = _Illumination(channels, layers)
        self.calibrate = _CalibrateLayout()
        self.calibrate.requires_grad_(False)
        self.register_load_state_dict_pre_hook(_refuse_untied)

    @property
    def illumination_net(self) -> _Illumination:
        return self._modules["enhance"]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.illumination_net(x)

    def apply(self, x: torch.Tensor, params: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
        return retinex_divide(x, params, strength=strength)

    def test_time_parameters(self) -> int:
        """Parameters that run at test time (258 as released): ``enhance`` only, the shared conv once."""
        return sum(p.numel() for p in self.illumination_net.parameters())


def _refuse_untied(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Refuse a state_dict whose copies of one shared tensor differ (load would silently keep one)."""
    groups: dict[int, list[str]] = {}
    for name, t in [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]:
        groups.setdefault(id(t), []).append(prefix + name)
    for keys in groups.values():
        present = [k for k in keys if k in state_dict]
        for k in present[1:]:
            a, b = state_dict[present[0]], state_dict[k]
            if a.shape == b.shape and not torch.equal(a, b):
                raise WeightsError(
                    f"{present[0]} and {k} are one shared tensor in {type(module).__name__} but differ in "
                    "this file; refusing to load (not SCI weights, or edited)"
                )


def sci(*, weights: WeightsEntry | None = None, progress: bool = True, **kwargs) -> SCI:
    """SCI, optionally with registered weights (``sci-easy``, ``sci-medium``, ``sci-difficult``)."""
    return build(SCI, weights, progress=progress, **kwargs)  # type: ignore[return-value]


def _entry(level: str, sha256: str, training_data: str) -> WeightsEntry:
    return WeightsEntry(
        name=f"sci-{level}",
        sha256=sha256,
        file_name=f"sci-{level}-{sha256[:8]}.pt",
        arch="sci",
        url=f"https://github.com/vis-opt-group/SCI/raw/main/weights/{level}.pt",
        # The authors' names (easy.pt, ...) are too generic to look up as aliases.
        aliases=(f"SCI-{level}.pt",),
        meta={
            "params": 258,
            "source": "Ma, Ma, Liu, Fan & Luo, Toward Fast, Flexible, and Robust Low-Light Image Enhancement, "
            f"CVPR 2022 (authors' release, repository vis-opt-group/SCI, weights/{level}.pt)",
            "licence": "MIT",
            "research_only": False,
            "training_data": training_data,
        },
    )


WEIGHTS: tuple[WeightsEntry, ...] = (
    _entry(
        "easy",
        "b17326a26a93bf187ecbab217f9d3c57467a8b56020d4d9ff600ba257bbffb36",
        "MIT-Adobe FiveK subset, per the authors' paper",
    ),
    _entry(
        "medium",
        "4ff1e7e66e8f18114f790e5085ca4c936f0858e329e7ad1cb65b8aa09a9c6916",
        "LSRW, per the authors' paper",
    ),
    _entry(
        "difficult",
        "657fa1f280cae1035df0d5cbe628e91f2d0f28660df608a3fa3f7e9a71da5a13",
        "DARK FACE, per the authors' paper",
    ),
)

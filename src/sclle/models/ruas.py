"""RUAS, Retinex-inspired unrolling with architecture search (Liu et al., CVPR 2021).

Written from the description of the authors' release; module names follow their ``ckpt/*.pt`` so the
files load ``strict``. Three unrolled illumination modules ``enhance_net.iems.{0,1,2}``: module k sees
``t = M(x)`` (k = 0) or ``t = M(u) - (u - x) / 2`` (k > 0), with ``M`` a 2x2 max over the pixel and its
right/bottom neighbours (zero beyond the border), and gives ``i = clamp(sigmoid(cell(t)), 0.001, 1)`` and
``u = clamp(x / i, 0, 1)``. ``forward`` returns the last ``i``; :meth:`RUAS.apply` divides by it and, for
the ``lol`` weights (``denoise=True``), subtracts the denoiser's estimate ``n`` of the noise of ``u``
(``u - n``, not clamped, as released: values may exceed 1).

The searched cells are fixed by the release: each op is the stored conv (with bias, "same" padding),
optionally plus its input, or the identity where the file holds no key for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sclle.core.weights import WeightsEntry
from sclle.models.base import Enhancer, build, retinex_divide

#: (kernel, dilation, adds its input) per op of a cell; ``None``: the identity.
OpSpec = tuple[int, int, bool] | None
ILLUMINATION_OPS: Mapping[str, OpSpec] = {
    "c1_d": None,
    "c1_r": (1, 1, True),
    "c2_d": (3, 2, True),
    "c2_r": (3, 1, False),
    "c3_d": (3, 1, False),
    "c3_r": None,
    "c4": (3, 1, False),
}
DENOISE_OPS: Mapping[str, OpSpec] = {
    "c1_d": (1, 1, True),
    "c1_r": (1, 1, True),
    "c2_d": (3, 2, True),
    "c2_r": None,
    "c3_d": (1, 1, True),
    "c3_r": (1, 1, True),
    "c4": None,
}
N_STAGES = 3
N_DENOISE_CELLS = 3
ILLUMINATION_MIN = 1e-3
LEAK = 0.05


def _op_radius(spec: OpSpec) -> int:
    return 0 if spec is None else (spec[0] - 1) // 2 * spec[1]


def cell_radius(ops: Mapping[str, OpSpec]) -> int:
    """Context one output pixel of a cell depends on, following the cell's paths (see :meth:`_Cell.forward`)."""
    r = {k: _op_radius(v) for k, v in ops.items()}
    r1 = r["c1_r"]
    r2 = r1 + r["c2_r"]
    r3 = r2 + r["c3_r"]
    return max(r["c1_d"], r1 + r["c2_d"], r2 + r["c3_d"], r3 + r["c4"])


#: Per stage: the 2x2 max (1 px, right/bottom) then a cell; the denoiser: 3x3 stem, cells, 3x3 head.
ILLUMINATION_RADIUS = N_STAGES * (1 + cell_radius(ILLUMINATION_OPS))
DENOISER_RADIUS = 1 + N_DENOISE_CELLS * cell_radius(DENOISE_OPS) + 1


class _Op(nn.Module):
    """One searched op: the stored conv (key ``op``), plus its input for the residual kinds."""

    def __init__(self, channels: int, kernel: int, dilation: int, residual: bool) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, kernel, 1, (kernel - 1) // 2 * dilation, dilation=dilation)
        self.residual = residual

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        y = self.op(t)
        return y + t if self.residual else y


class _Cell(nn.Module):
    """The searched cell: three distilled (``_d``) / refined (``_r``) steps, ``c4``, a 1x1 fusion ``c5``."""

    def __init__(self, channels: int, ops: Mapping[str, OpSpec]) -> None:
        super().__init__()
        for name, spec in ops.items():
            self.add_module(name, nn.Identity() if spec is None else _Op(channels, *spec))
        self.c5 = nn.Conv2d(4 * channels, channels, 1)
        self.act = nn.LeakyReLU(LEAK)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        act = self.act
        d1 = act(self.c1_d(t))
        r1 = act(self.c1_r(t) + t)
        d2 = act(self.c2_d(r1))
        r2 = act(self.c2_r(r1) + r1)
        d3 = act(self.c3_d(r2))
        r3 = act(self.c3_r(r2) + r2)
        r4 = act(self.c4(r3))
        return self.c5(torch.cat([d1, d2, d3, r4], 1))


class _IlluminationStage(nn.Module):
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.cell = _Cell(channels, ILLUMINATION_OPS)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.cell(t)).clamp(ILLUMINATION_MIN, 1.0)


class _EnhanceNet(nn.Module):
    def __init__(self, stages: int = N_STAGES) -> None:
        super().__init__()
        self.iems = nn.ModuleList(_IlluminationStage() for _ in range(stages))


class _DenoiseNet(nn.Module):
    """``n = activate(cells(stem(u)))``: the noise estimate the ``lol`` release subtracts."""

    def __init__(self, channels: int = 6, cells: int = N_DENOISE_CELLS) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, 1, 1)
        self.nrms = nn.ModuleList(_Cell(channels, DENOISE_OPS) for _ in range(cells))
        self.activate = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        f = self.stem(u)
        for cell in self.nrms:
            f = cell(f)
        return self.activate(f)


def max_2x2(t: torch.Tensor) -> torch.Tensor:
    """Max over each pixel and its right/bottom neighbours, zero beyond the border (same size)."""
    return F.max_pool2d(F.pad(t, (0, 1, 0, 1)), 2, 1)


class RUAS(Enhancer):
    """RUAS. ``forward(x)`` is the last stage's illumination; :meth:`apply` gives the released output.

    Args:
        denoise: run the denoiser after the division (the ``lol`` release). Every release stores the
            denoiser's keys, so it is always registered; only ``lol`` uses it.

    ``receptive_radius`` is that of the ``lol`` variant (illumination 9 px + denoiser 8 px): a halo that
    size is exact for every variant.
    """

    arch = "ruas"
    family = "retinex"
    receptive_radius = ILLUMINATION_RADIUS + DENOISER_RADIUS
    supports_fast = False

    def __init__(self, denoise: bool = False) -> None:
        super().__init__()
        self.denoise = denoise
        self.enhance_net = _EnhanceNet()
        self.denoise_net = _DenoiseNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.enhance_net.iems
        u = x
        i = x
        for k, stage in enumerate(stages):
            i = stage(max_2x2(x) if k == 0 else max_2x2(u) - 0.5 * (u - x))
            if k + 1 < len(stages):
                u = (x / i).clamp(0.0, 1.0)
        return i

    def apply(self, x: torch.Tensor, params: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
        """``x / i ** strength``; with the denoiser ``u - strength * n`` (strength 0 is the identity)."""
        u = retinex_divide(x, params, strength=strength)
        if not self.denoise:
            return u
        n = self.denoise_net(u)
        return u - n if strength == 1.0 else u - strength * n

    def test_time_parameters(self) -> int:
        """Parameters that run at test time: 1,161 (illumination), 3,438 with the denoiser."""
        nets = [self.enhance_net, self.denoise_net] if self.denoise else [self.enhance_net]
        return sum(p.numel() for net in nets for p in net.parameters())


def ruas(*, weights: WeightsEntry | None = None, progress: bool = True, **kwargs) -> RUAS:
    """RUAS, optionally with registered weights (``ruas-lol``, ``ruas-upe``, ``ruas-dark``)."""
    return build(RUAS, weights, progress=progress, **kwargs)  # type: ignore[return-value]


def _entry(variant: str, sha256: str, training_data: str, denoise: bool) -> WeightsEntry:
    return WeightsEntry(
        name=f"ruas-{variant}",
        sha256=sha256,
        file_name=f"ruas-{variant}-{sha256[:8]}.pt",
        arch="ruas",
        url=f"https://github.com/dut-media-lab/RUAS/raw/main/ckpt/{variant}.pt",
        # The authors' names (lol.pt, ...) are too generic to look up as aliases.
        aliases=(f"RUAS-{variant}.pt",),
        arch_kwargs={"denoise": denoise},
        meta={
            "params": 3438 if denoise else 1161,
            "source": "Liu, Ma, Zhang, Zhang & Luo, Retinex-inspired Unrolling with Cooperative Prior "
            "Architecture Search for Low-light Image Enhancement, CVPR 2021 (authors' release, repository "
            f"dut-media-lab/RUAS, ckpt/{variant}.pt)",
            "licence": "none stated (all rights reserved): research and comparison use only",
            "research_only": True,
            "training_data": training_data,
        },
    )


WEIGHTS: tuple[WeightsEntry, ...] = (
    _entry(
        "lol",
        "f45a881a9b836fff4a3172481f28c9eb4d91bc4df54ec064092f39ce40abcdcd",
        "LOL, per the authors' paper",
        True,
    ),
    _entry(
        "upe",
        "2252d3d909e346b547232c7015f034685aac75181171c6caf90ee12d87ca36c1",
        "MIT-Adobe FiveK (the UPE split), per the authors' paper",
        False,
    ),
    _entry(
        "dark",
        "59083ec4dd4a2b7926c182a4add1519b9646a3aca6c39cfdb7d496fe885828e4",
        "DARK FACE, per the authors' paper",
        False,
    ),
)

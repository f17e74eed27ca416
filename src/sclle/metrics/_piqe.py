"""PIQE, the Perception-based Image Quality Evaluator (Venkatanath et al., NCC 2015), as MATLAB ``piqe``.

Scores 16x16 blocks of the MSCN image: only "active" blocks (variance > 0.1) count; an active block
is distorted if an edge segment of 6 pixels is nearly flat (blockiness) or if the spread of its
centre columns differs from its surround the way Gaussian noise makes it. Score in [0, 100],
lower is better. The block tests are vectorised over all blocks at once.

MATLAB details kept on purpose: replicate padding to a multiple of 16 at the bottom/right, the grey
image rounded to 8 bits, unbiased (N-1) variances, and the "surround" that excludes columns 8 and
10 (1-based) of a block: MATLAB deletes column 8 and then column 9 *of the shrunken block*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sclle.metrics._common import check_image, gaussian_kernel1d, separable_filter
from sclle.metrics.color import rgb_to_gray255

BLOCK = 16
_ACTIVITY_T = 0.1
_IMPAIRED_T = 0.1
_SEGMENT = 6


def _std(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.std(dim=dim, unbiased=True)


@torch.no_grad()
def piqe(image: torch.Tensor) -> torch.Tensor:
    """PIQE score of each image in a (B, 3, H, W) [0, 1] batch -> (B,) float64 in [0, 100]; lower is better."""
    check_image(image, min_size=1)
    gray = rgb_to_gray255(image)
    h, w = gray.shape[-2:]
    ph, pw = (-h) % BLOCK, (-w) % BLOCK
    if ph or pw:
        gray = F.pad(gray, (0, pw, 0, ph), mode="replicate")

    k = gaussian_kernel1d(7, 7 / 6, device=gray.device)
    mu, mu_sq = separable_filter(torch.cat([gray, gray * gray], dim=1), k).split(1, dim=1)
    sigma = torch.sqrt((mu_sq - mu * mu).abs())
    norm = ((gray - mu) / (sigma + 1)).squeeze(1)

    b, hh, ww = norm.shape
    nh, nw = hh // BLOCK, ww // BLOCK
    blocks = norm.reshape(b, nh, BLOCK, nw, BLOCK).permute(0, 1, 3, 2, 4).reshape(b, nh * nw, BLOCK, BLOCK)

    var = blocks.flatten(-2).var(dim=-1, unbiased=True)  # (B, N)
    active = var > _ACTIVITY_T

    # Noticeable artifacts: any 6-pixel segment of any of the 4 block edges with std < 0.1.
    edges = torch.stack([blocks[..., 0, :], blocks[..., :, -1], blocks[..., -1, :], blocks[..., :, 0]], dim=2)
    seg_std = _std(edges.unfold(-1, _SEGMENT, 1), dim=-1)  # (B, N, 4, 11)
    impaired = (seg_std < _IMPAIRED_T).flatten(-2).any(dim=-1)

    # Gaussian noise: centre columns 8, 9 vs the block without columns 8 and 10 (1-based, see above).
    c1 = BLOCK // 2 - 1  # 0-based index of MATLAB's center1 = (15 + 1) / 2 = 8
    centre = blocks[..., :, c1 : c1 + 2].flatten(-2)
    keep = [j for j in range(BLOCK) if j not in (c1, c1 + 2)]
    surround = blocks[..., :, keep].flatten(-2)
    cen_sur = _std(centre, -1) / _std(surround, -1)
    cen_sur = torch.nan_to_num(cen_sur, nan=0.0, posinf=float("inf"))  # MATLAB: NaN -> 0
    block_sigma = var.sqrt()
    beta = (block_sigma - cen_sur).abs() / torch.maximum(block_sigma, cen_sur)
    noisy = block_sigma > 2 * beta

    score = impaired * (1 - var) + noisy * var
    dist = torch.where(active, score, torch.zeros_like(score))  # inactive blocks may hold NaN
    n_active = active.sum(dim=-1).to(torch.float64)
    return ((dist.sum(dim=-1) + 1) / (n_active + 1) * 100).to(torch.float64)


class PIQE(nn.Module):
    """Module twin of :func:`piqe`."""

    lower_is_better = True

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return piqe(image)


__all__ = ["piqe", "PIQE"]

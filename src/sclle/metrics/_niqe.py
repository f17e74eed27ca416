"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik 2013), as the original release.

Reproduces ``computequality.m`` of the authors' MATLAB release (not MATLAB's later built-in
``niqe``, which uses other pristine parameters): grey image from ``rgb2gray`` on the 8-bit image,
crop to a multiple of 96, MSCN coefficients with a 7x7 Gaussian (``replicate`` border, C = 1),
18 AGGD features per 96x96 block (the four pairwise-product orientations wrap *inside* each block,
as ``circshift`` in ``blkproc`` does), repeated on the ``imresize(.., 0.5)`` image with 48x48
blocks, then the distance between the pristine and the image's multivariate Gaussians with
``pinv`` of the averaged covariance. Every block is used (the release computes block sharpness
but only uses it when *training* the pristine model). Lower is better.

The pristine parameters ship as ``data/niqe_pris_params.npz`` (see the package NOTICE).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from torch import nn

from sclle.metrics._common import check_image, imresize_half, separable_filter
from sclle.metrics.color import rgb_to_gray255

BLOCK = 96
#: The AGGD shape grid of ``estimateaggdparam.m`` (0.2:0.001:10).
_GAMMA_GRID = np.linspace(0.2, 10.0, 9801)
#: |MSCN| below this is float noise of a flat area, set to exactly 0 (see :func:`_mscn`).
_FLAT_EPS = 1e-9


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36), 1-D window (7,)) of the pristine model, loaded once."""
    with resources.files("sclle.metrics").joinpath("data/niqe_pris_params.npz").open("rb") as fh:
        data = np.load(fh)
        mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
        win2d = np.asarray(data["gaussian_window"], dtype=np.float64)
    # The window is fspecial('gaussian', 7, 7/6): rank one, so filter separably with its row sums.
    win1d = win2d.sum(axis=1)
    if not np.allclose(np.outer(win1d, win1d), win2d, rtol=0, atol=1e-12):
        raise RuntimeError("niqe_pris_params.npz: gaussian_window is not separable; file corrupt?")
    return mu, cov, win1d


@lru_cache(maxsize=8)
def _ratio_grid(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape grid and its generalised-Gaussian ratio r(a) = G(2/a)^2 / (G(1/a) G(3/a)), increasing in a."""
    g = torch.from_numpy(_GAMMA_GRID).to(device)
    r = torch.exp(2 * torch.lgamma(2 / g) - torch.lgamma(1 / g) - torch.lgamma(3 / g))
    return g, r


def _fit_aggd(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moment-matching AGGD fit of each row of ``v`` (N, M) -> (alpha, beta_left, beta_right), each (N,).

    Same estimator as ``estimateaggdparam.m``: the shape is the grid value whose ratio is closest
    to the normalised moment ratio (first index on ties, like MATLAB ``min``). The ratio is
    monotonic, so a binary search replaces the 9801-wide scan.
    """
    grid, ratio = _ratio_grid(v.device)
    m = v.shape[1]
    vneg = v.clamp(max=0)
    n_neg = (v < 0).sum(1)
    n_pos = (v > 0).sum(1)
    sq_neg = (vneg * vneg).sum(1)
    sq_all = (v * v).sum(1)
    abs_sum = v.sum(1) - 2 * vneg.sum(1)
    left = torch.sqrt(sq_neg / n_neg)  # NaN when no negatives, as MATLAB mean([])
    right = torch.sqrt((sq_all - sq_neg) / n_pos)
    gammahat = left / right
    rhat = (abs_sum / m) ** 2 / (sq_all / m)
    rnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    hi = torch.searchsorted(ratio, rnorm.nan_to_num(0.0).contiguous()).clamp(1, len(ratio) - 1)
    lo = hi - 1
    take_hi = (ratio[hi] - rnorm) ** 2 < (ratio[lo] - rnorm) ** 2
    idx = torch.where(take_hi, hi, lo)
    idx = torch.where(torch.isnan(rnorm), torch.zeros_like(idx), idx)  # MATLAB min of all-NaN -> 1st
    alpha = grid[idx]
    k = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, left * k, right * k


def _block_features(mscn: torch.Tensor, bs: int) -> torch.Tensor:
    """(B, H, W) MSCN with H, W multiples of ``bs`` -> (B, n_blocks, 18) features of ``computefeature.m``."""
    b, h, w = mscn.shape
    nh, nw = h // bs, w // bs
    blocks = mscn.reshape(b, nh, bs, nw, bs).permute(0, 1, 3, 2, 4).reshape(b * nh * nw, bs, bs)
    feats = []
    alpha, bl, br = _fit_aggd(blocks.reshape(blocks.shape[0], -1))
    feats += [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        shifted = torch.roll(blocks, shifts=shift, dims=(1, 2))  # circshift within the block
        pair = (blocks * shifted).reshape(blocks.shape[0], -1)
        alpha, bl, br = _fit_aggd(pair)
        mean = (br - bl) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, dim=1).reshape(b, nh * nw, 18)


def _mscn(im: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of (B, 1, H, W), C = 1, replicate border."""
    mu, mu_sq = separable_filter(torch.cat([im, im * im], dim=1), win).split(1, dim=1)
    sigma = torch.sqrt((mu_sq - mu * mu).abs())
    mscn = ((im - mu) / (sigma + 1)).squeeze(1)
    # In flat areas (e.g. clipped highlights) im - mu is 0 up to float rounding (~1e-14), whose
    # sign would decide whether those pixels count as left or right AGGD samples. Make them
    # exactly 0: real coefficients of 8-bit images are many orders larger.
    return torch.where(mscn.abs() < _FLAT_EPS, torch.zeros_like(mscn), mscn)


def _nancov(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``nancov``: covariance (N-1 normalised) of the rows without NaN; zeros for < 2 rows."""
    x = x[~torch.isnan(x).any(dim=1)]
    if x.shape[0] < 2:
        return torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype, device=x.device)
    xc = x - x.mean(0, keepdim=True)
    return xc.T @ xc / (x.shape[0] - 1)


@torch.no_grad()
def niqe(image: torch.Tensor) -> torch.Tensor:
    """NIQE score of each image in a (B, 3, H, W) [0, 1] batch -> (B,) float64; lower is better.

    Images must be at least 96x96 (one block); the part beyond a multiple of 96 is cropped, as in
    the original release. Small images have few blocks (512x384 gives 20), so the image's
    covariance estimate, and with it the score, is noisier for them. Not differentiable.
    """
    check_image(image, min_size=BLOCK)
    mu_p, cov_p, win = _pristine()
    dev = image.device
    win_t = torch.from_numpy(win).to(dev)
    gray = rgb_to_gray255(image)
    h, w = gray.shape[-2:]
    gray = gray[..., : h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    f1 = _block_features(_mscn(gray, win_t), BLOCK)
    f2 = _block_features(_mscn(imresize_half(gray), win_t), BLOCK // 2)
    feats = torch.cat([f1, f2], dim=2)  # (B, n_blocks, 36)

    mu_p_t = torch.from_numpy(mu_p).to(dev)
    cov_p_t = torch.from_numpy(cov_p).to(dev)
    scores = []
    for f in feats:  # per image: 36x36 algebra, negligible cost
        mu_d = torch.nanmean(f, dim=0)
        cov_d = _nancov(f)
        d = (mu_p_t - mu_d).unsqueeze(0)
        inv = torch.linalg.pinv((cov_p_t + cov_d) / 2)
        scores.append(torch.sqrt((d @ inv @ d.T).squeeze()))
    return torch.stack(scores).to(torch.float64)


class NIQE(nn.Module):
    """Module twin of :func:`niqe` (no parameters; the pristine model is package data)."""

    lower_is_better = True

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return niqe(image)


__all__ = ["niqe", "NIQE", "BLOCK"]

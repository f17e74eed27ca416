"""Classical (training-free) low-light enhancement baselines.

Every baseline is a function ``f(x, **params) -> y`` on a float (B, 3, H, W) RGB batch in [0, 1]
returning a float32 batch of the same shape in [0, 1] on the input's device, plus an ``nn.Module``
twin. They are reference points for the learned enhancers, so each follows its paper's recipe and
documents its parameters rather than being tuned:

* ``gamma`` -- global power law ``x ** gamma`` (pure torch, differentiable).
* ``he`` -- histogram equalisation of the luma channel only (OpenCV YCrCb), so hue is kept.
* ``clahe`` -- contrast-limited adaptive HE of Lab ``L`` (OpenCV, clip limit 2, 8x8 tiles).
* ``lime`` -- Guo, Li & Ling, "LIME: Low-light image enhancement via illumination map estimation",
  IEEE TIP 2017: max-RGB illumination refined by the paper's sped-up structure-aware solver.
* ``msrcr`` -- Jobson, Rahman & Woodell, "A multiscale retinex for bridging the gap between color
  images and the human observation of scenes", IEEE TIP 1997, with simplest-colour-balance clipping.

The OpenCV/SciPy baselines run on the CPU, one image at a time (they are references, not fast paths).
:data:`BASELINES` is the registry the enhancement-method registry builds on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import nn

from sclle._checks import check_image as _check_image
from sclle.errors import SclleError

__all__ = [
    "BASELINES",
    "BaselineInfo",
    "CLAHE",
    "GammaCorrection",
    "HistogramEqualization",
    "LIME",
    "MSRCR",
    "clahe",
    "gamma_correction",
    "get_baseline",
    "histogram_equalization",
    "lime",
    "lime_illumination",
    "lime_system",
    "list_baselines",
    "msrcr",
]


# --------------------------------------------------------------------------- boundary helpers


def _per_image(x: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply a numpy (H, W, 3) float64 -> (H, W, 3) float function to each image of the batch."""
    images = x.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
    out = [np.clip(fn(np.ascontiguousarray(img)), 0.0, 1.0).astype(np.float32) for img in images]
    if not out:
        return torch.empty(x.shape, dtype=torch.float32, device=x.device)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(x.device)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 by rounding (the 8-bit domain the OpenCV equalisers are defined on)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- gamma


def gamma_correction(x: torch.Tensor, *, gamma: float = 1.0 / 2.2) -> torch.Tensor:
    """Global power law ``x ** gamma``; ``gamma < 1`` brightens.

    The default ``1/2.2`` is the classic display-gamma encoding: it lifts shadows strongly while
    keeping black and white fixed. Unlike the other baselines this stays on the input's device
    and is differentiable.
    """
    _check_image(x, "gamma_correction")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma_correction: gamma must be a positive finite number, got {gamma}")
    return x.to(torch.float32).clamp(0.0, 1.0).pow(gamma)


# --------------------------------------------------------------------------- histogram equalisation


def _he_image(img: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(_to_uint8(img), cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.equalizeHist(ycc[..., 0])
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB).astype(np.float64) / 255.0


def histogram_equalization(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of the luma channel (8-bit YCrCb ``Y``, OpenCV ``equalizeHist``).

    Equalising only luma and keeping Cr/Cb avoids the colour shifts of per-channel HE. The result
    is quantised to 8 bits, like every 8-bit HE.
    """
    _check_image(x, "histogram_equalization")
    return _per_image(x, _he_image)


# --------------------------------------------------------------------------- CLAHE


def clahe(x: torch.Tensor, *, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """Contrast-limited adaptive HE (Zuiderveld 1994) of the 8-bit Lab ``L`` channel (OpenCV).

    Args:
        clip_limit: OpenCV's ``clipLimit`` (histogram clip, relative to the mean bin count).
        tile_grid: (rows, cols) of contextual tiles, OpenCV's ``tileGridSize``.
    """
    _check_image(x, "clahe")
    if not (math.isfinite(clip_limit) and clip_limit > 0):
        raise ValueError(f"clahe: clip_limit must be positive, got {clip_limit}")
    if len(tile_grid) != 2 or min(tile_grid) < 1:
        raise ValueError(f"clahe: tile_grid must be two positive ints, got {tile_grid}")
    grid = (int(tile_grid[1]), int(tile_grid[0]))  # OpenCV wants (width, height)

    def one(img: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(_to_uint8(img), cv2.COLOR_RGB2Lab)
        # A fresh object per image: CLAHE objects keep state and are not thread-safe.
        lab[..., 0] = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=grid).apply(lab[..., 0])
        return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB).astype(np.float64) / 255.0

    return _per_image(x, one)


# --------------------------------------------------------------------------- LIME


def _forward_diffs(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences (horizontal, vertical); zero on the last column/row (no edge outside)."""
    gx = np.zeros_like(t)
    gy = np.zeros_like(t)
    gx[:, :-1] = t[:, 1:] - t[:, :-1]
    gy[:-1, :] = t[1:, :] - t[:-1, :]
    return gx, gy


def lime_system(
    t_hat: np.ndarray,
    *,
    alpha: float = 0.15,
    sigma: float = 2.0,
    strategy: int = 3,
    eps: float = 1e-3,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparse linear system of LIME's sped-up solver, ``A t = t_hat`` (paper Sec. III-B).

    LIME refines the initial illumination ``T^`` (max over RGB) by
    ``min_T ||T^ - T||^2 + alpha ||W o grad T||_1``. Its sped-up solver replaces the l1 term by the
    weighted quadratic ``sum_d W_d (grad_d T)^2 / (|grad_d T^| + eps)``, whose minimiser solves

        (I + sum_{d in {h, v}} D_d^T diag(alpha * W_d / (|grad_d T^| + eps)) D_d) t = t^

    with ``D_d`` forward differences. ``A`` is a weighted graph Laplacian plus the identity: symmetric
    positive definite, ``A @ 1 = 1`` (so the mean of ``t`` equals that of ``t^``) and an M-matrix
    (so ``min t^ <= t <= max t^``).

    Weights ``W_d`` (paper strategies): 1 -> ``1``; 2 -> ``1 / (|grad_d T^| + eps)``;
    3 -> ``1 / (|G_sigma * grad_d T^| + eps)`` with a normalised Gaussian ``G_sigma`` (the
    numerator ``sum G_sigma`` of the paper is then 1), which keeps only edges that are consistent
    over a neighbourhood and so smooths texture harder than strategy 2.

    Args:
        t_hat: (H, W) initial illumination in [0, 1].
    Returns:
        ``(A, b)``: ``A`` (H*W, H*W) CSR, ``b = t_hat.ravel()`` (row-major).
    """
    t_hat = np.asarray(t_hat, dtype=np.float64)
    if t_hat.ndim != 2:
        raise ValueError(f"lime_system: t_hat must be (H, W), got shape {t_hat.shape}")
    if strategy not in (1, 2, 3):
        raise ValueError(f"lime_system: strategy must be 1, 2 or 3, got {strategy}")
    if not (alpha >= 0 and eps > 0 and sigma > 0):
        raise ValueError(f"lime_system: need alpha >= 0, eps > 0, sigma > 0 (got {alpha}, {eps}, {sigma})")
    h, w = t_hat.shape
    gx, gy = _forward_diffs(t_hat)
    coeffs = []
    for g in (gx, gy):
        if strategy == 1:
            weight = np.ones_like(g)
        elif strategy == 2:
            weight = 1.0 / (np.abs(g) + eps)
        else:
            weight = 1.0 / (np.abs(cv2.GaussianBlur(g, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)) + eps)
        coeffs.append(alpha * weight / (np.abs(g) + eps))
    cx, cy = coeffs
    cx[:, -1] = 0.0  # no horizontal edge leaves the last column
    cy[-1, :] = 0.0  # no vertical edge leaves the last row
    # Edge p -- p+1 (horizontal) and p -- p+w (vertical), each with weight c_p: Laplacian stencil.
    diag = 1.0 + cx.copy()
    diag[:, 1:] += cx[:, :-1]
    diag += cy
    diag[1:, :] += cy[:-1, :]
    ex = -cx.ravel()[:-1]
    ey = -cy.ravel()[:-w]
    n = h * w
    a = sp.diags(diag.ravel(), 0, shape=(n, n), format="csr")
    for off, e in ((1, ex), (w, ey)):  # summed, not stacked: offsets 1 and w coincide when w == 1
        if n > off:
            a = a + sp.diags([e, e], [off, -off], shape=(n, n), format="csr")
    return a, t_hat.ravel().copy()


def lime_illumination(
    t_hat: np.ndarray,
    *,
    alpha: float = 0.15,
    sigma: float = 2.0,
    strategy: int = 3,
    eps: float = 1e-3,
    max_pixels: int | None = 400_000,
) -> np.ndarray:
    """Refined LIME illumination ``T`` (H, W) from the initial map ``t_hat`` (H, W).

    Solves :func:`lime_system` exactly with a sparse direct solver (SuperLU, minimum-degree
    ordering). The direct solve grows faster than linearly (about 1 s for 0.24 MP, 8 s for 1 MP on
    one core), so when ``H*W > max_pixels`` the system is solved on an area-downscaled ``t_hat`` with
    at most ``max_pixels`` pixels (same parameters) and the result is upsampled bilinearly; an
    illumination map is smooth, so little is lost. ``max_pixels=None`` always solves at full size.
    """
    t_hat = np.asarray(t_hat, dtype=np.float64)
    if t_hat.ndim != 2:
        raise ValueError(f"lime_illumination: t_hat must be (H, W), got shape {t_hat.shape}")
    h, w = t_hat.shape
    small = t_hat
    if max_pixels is not None:
        if max_pixels < 1:
            raise ValueError(f"lime_illumination: max_pixels must be >= 1 or None, got {max_pixels}")
        if h * w > max_pixels:
            s = math.sqrt(max_pixels / (h * w))
            size = (max(1, int(w * s)), max(1, int(h * s)))  # cv2 order: (width, height)
            small = cv2.resize(t_hat, size, interpolation=cv2.INTER_AREA)
    a, b = lime_system(small, alpha=alpha, sigma=sigma, strategy=strategy, eps=eps)
    t = spla.spsolve(a.tocsc(), b, permc_spec="MMD_AT_PLUS_A").reshape(small.shape)
    if small.shape != t_hat.shape:
        t = cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR)
    return t


def lime(
    x: torch.Tensor,
    *,
    alpha: float = 0.15,
    gamma: float = 0.8,
    sigma: float = 2.0,
    strategy: int = 3,
    eps: float = 1e-3,
    max_pixels: int | None = 400_000,
) -> torch.Tensor:
    """LIME (Guo et al. 2017): ``y = x / max(T, eps) ** gamma``, ``T`` the refined max-RGB illumination.

    Defaults are the paper's (alpha 0.15, gamma 0.8, sigma 2, weighting strategy 3) with the
    sped-up solver solved exactly (see :func:`lime_illumination` for the reduced-resolution solve
    above ``max_pixels``). The paper's optional BM3D denoising step is not included.
    """
    _check_image(x, "lime")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"lime: gamma must be positive, got {gamma}")

    def one(img: np.ndarray) -> np.ndarray:
        t = lime_illumination(
            img.max(axis=2), alpha=alpha, sigma=sigma, strategy=strategy, eps=eps, max_pixels=max_pixels
        )
        return img / np.power(np.maximum(t, eps), gamma)[..., None]

    return _per_image(x, one)


# --------------------------------------------------------------------------- MSRCR


def msrcr(
    x: torch.Tensor,
    *,
    sigmas: tuple[float, ...] = (15.0, 80.0, 250.0),
    alpha: float = 125.0,
    beta: float = 46.0,
    gain: float = 192.0,
    offset: float = -30.0,
    low_clip: float = 0.01,
    high_clip: float = 0.99,
) -> torch.Tensor:
    """Multi-scale Retinex with colour restoration (Jobson et al. 1997).

    On ``I = 255 x + 1`` (the +1 keeps logs finite), per channel ``i``:

    * MSR: ``R_i = mean_n [log I_i - log(G_{sigma_n} * I_i)]`` (equal weights, ``cv2.GaussianBlur``);
    * colour restoration: ``C_i = beta [log(alpha I_i) - log(sum_j I_j)]``;
    * ``MSRCR_i = gain (C_i R_i + offset)`` (Jobson's gain 192 and offset -30);
    * simplest colour balance: per channel, the ``low_clip`` / ``high_clip`` quantiles are mapped to
      0 / 1 and the rest clipped. This final stretch makes ``gain`` and ``offset`` immaterial (any
      positive gain gives the same output); they are kept for fidelity to the paper. A channel with
      no spread left (a flat image) is returned unchanged.
    """
    _check_image(x, "msrcr")
    if not sigmas or min(sigmas) <= 0:
        raise ValueError(f"msrcr: sigmas must be positive, got {sigmas}")
    if not (0.0 <= low_clip < high_clip <= 1.0):
        raise ValueError(f"msrcr: need 0 <= low_clip < high_clip <= 1, got {low_clip}, {high_clip}")
    if not (alpha > 0 and gain > 0):
        raise ValueError(f"msrcr: alpha and gain must be positive, got {alpha}, {gain}")

    def one(img: np.ndarray) -> np.ndarray:
        # float32 blurs: ~3x faster than float64 for the 250-px scale, ample precision for a log.
        i = (img * 255.0 + 1.0).astype(np.float32)
        log_i = np.log(i)
        msr = np.zeros_like(i)
        for s in sigmas:
            msr += log_i - np.log(cv2.GaussianBlur(i, (0, 0), float(s)))
        msr /= len(sigmas)
        crf = beta * (np.log(alpha * i) - np.log(i.sum(axis=2, keepdims=True)))
        out = gain * (crf * msr + offset)
        res = np.empty(img.shape, dtype=np.float64)
        for c in range(3):
            lo, hi = np.quantile(out[..., c], [low_clip, high_clip])
            if hi - lo > 1e-3 * gain:  # float32 rounding on a flat image stays far below this
                res[..., c] = (out[..., c] - lo) / (hi - lo)
            else:
                res[..., c] = img[..., c]
        return res

    return _per_image(x, one)


# --------------------------------------------------------------------------- module twins


class GammaCorrection(nn.Module):
    """Module twin of :func:`gamma_correction`."""

    def __init__(self, gamma: float = 1.0 / 2.2) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gamma_correction(x, gamma=self.gamma)


class HistogramEqualization(nn.Module):
    """Module twin of :func:`histogram_equalization`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return histogram_equalization(x)


class CLAHE(nn.Module):
    """Module twin of :func:`clahe`."""

    def __init__(self, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> None:
        super().__init__()
        self.clip_limit = clip_limit
        self.tile_grid = tile_grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return clahe(x, clip_limit=self.clip_limit, tile_grid=self.tile_grid)


class LIME(nn.Module):
    """Module twin of :func:`lime`."""

    def __init__(
        self,
        alpha: float = 0.15,
        gamma: float = 0.8,
        sigma: float = 2.0,
        strategy: int = 3,
        eps: float = 1e-3,
        max_pixels: int | None = 400_000,
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            alpha=alpha, gamma=gamma, sigma=sigma, strategy=strategy, eps=eps, max_pixels=max_pixels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lime(x, **self.kwargs)


class MSRCR(nn.Module):
    """Module twin of :func:`msrcr`."""

    def __init__(
        self,
        sigmas: tuple[float, ...] = (15.0, 80.0, 250.0),
        alpha: float = 125.0,
        beta: float = 46.0,
        gain: float = 192.0,
        offset: float = -30.0,
        low_clip: float = 0.01,
        high_clip: float = 0.99,
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            sigmas=sigmas,
            alpha=alpha,
            beta=beta,
            gain=gain,
            offset=offset,
            low_clip=low_clip,
            high_clip=high_clip,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return msrcr(x, **self.kwargs)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class BaselineInfo:
    """A classical baseline: ``fn(x, **params)`` maps a (B, 3, H, W) [0, 1] batch to the same."""

    name: str
    fn: Callable[..., torch.Tensor]
    description: str
    reference: str
    module: type[nn.Module] | None = None


BASELINES: dict[str, BaselineInfo] = {
    info.name: info
    for info in (
        BaselineInfo(
            "gamma",
            gamma_correction,
            "global power law x**(1/2.2)",
            "power-law (gamma) transformation; Gonzalez & Woods, Digital Image Processing, ch. 3",
            GammaCorrection,
        ),
        BaselineInfo(
            "he",
            histogram_equalization,
            "histogram equalisation of luma (YCrCb Y), chroma kept",
            "Gonzalez & Woods, Digital Image Processing, ch. 3 (histogram equalization)",
            HistogramEqualization,
        ),
        BaselineInfo(
            "clahe",
            clahe,
            "contrast-limited adaptive HE of Lab L (clip 2.0, 8x8 tiles)",
            "Zuiderveld, 'Contrast limited adaptive histogram equalization', Graphics Gems IV, 1994",
            CLAHE,
        ),
        BaselineInfo(
            "lime",
            lime,
            "LIME: max-RGB illumination refined by structure-aware smoothing, x / T**0.8",
            "Guo, Li & Ling, 'LIME: Low-light image enhancement via illumination map estimation', "
            "IEEE TIP 26(2), 2017",
            LIME,
        ),
        BaselineInfo(
            "msrcr",
            msrcr,
            "multi-scale Retinex (15/80/250) with colour restoration, 1%/99% colour balance",
            "Jobson, Rahman & Woodell, 'A multiscale retinex for bridging the gap between color images "
            "and the human observation of scenes', IEEE TIP 6(7), 1997",
            MSRCR,
        ),
    )
}


def list_baselines() -> list[str]:
    """Names of the classical baselines."""
    return list(BASELINES)


def get_baseline(name: str) -> BaselineInfo:
    """Look a baseline up by name; an unknown name raises :class:`SclleError` listing the known ones."""
    try:
        return BASELINES[name]
    except KeyError:
        raise SclleError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None

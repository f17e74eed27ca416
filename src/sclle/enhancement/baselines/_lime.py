"""LIME (Guo, Li & Ling, IEEE TIP 2017): max-RGB illumination refined by the paper's sped-up solver.

"LIME: Low-light image enhancement via illumination map estimation": ``y = x / T ** gamma`` with
``T`` the max over RGB smoothed by a structure-aware, weighted-quadratic problem that is one sparse
linear system (:func:`lime_system`), solved exactly by SciPy's SuperLU (:func:`lime_illumination`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import nn

from sclle.core.checks import check_image
from sclle.enhancement.baselines._common import per_image


def _forward_diffs(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences (horizontal, vertical); zero on the last column/row (no edge outside)."""
    # Appending the last column/row makes its difference exactly 0.
    return np.diff(t, axis=1, append=t[:, -1:]), np.diff(t, axis=0, append=t[-1:, :])


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
    check_image(x, "lime")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"lime: gamma must be positive, got {gamma}")

    def one(img: np.ndarray) -> np.ndarray:
        t = lime_illumination(
            img.max(axis=2), alpha=alpha, sigma=sigma, strategy=strategy, eps=eps, max_pixels=max_pixels
        )
        return img / np.power(np.maximum(t, eps), gamma)[..., None]

    return per_image(x, one)


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

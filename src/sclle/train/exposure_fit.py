"""Fit the adaptive-exposure numbers (:mod:`sclle.models.exposure`) to a strength sweep on training pairs.

``scripts/fit_exposure.py`` runs the network once per training pair and scores its output at every strength
of :func:`strengths_to` (PSNR/SSIM against the reference); :func:`fit` then grid-searches ``(a, b, c)`` of
``s = clamp(a + b * log_mean + c * log_highlights, 0, hi)`` for the best weighted mean of PSNR + 20 SSIM
over the kinds of pairs, optionally minus ``niqe_weight`` times the outputs' NIQE (a no-reference naturalness
term: PSNR against a fused or original reference says nothing about how natural a lifted shadow looks,
docs/results.md). The sweep is kept (a JSON of rows), so a different grid or cap is a refit in
seconds, not a new sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sclle.models.exposure import MAX_STRENGTH

#: Kinds of training pairs: SICE frames against the scene's fusion, darkened CamVid, untouched CamVid.
KINDS = ("sice", "camvid_dark", "camvid_normal")
#: An untouched image scores inf: capped, so that one kind cannot dominate the mean.
PSNR_CAP = 40.0
#: Spacing of the swept strengths.
STEP = 0.1


def strengths_to(max_strength: float = 2.5) -> np.ndarray:
    """The swept strengths 0, 0.1, .., ``max_strength``."""
    if not 0.0 < max_strength <= MAX_STRENGTH:
        raise ValueError(f"max_strength must be in (0, {MAX_STRENGTH:g}], got {max_strength}")
    return np.round(np.arange(0.0, max_strength + STEP / 2, STEP), 2)


def _grid(lo: float, hi: float) -> np.ndarray:
    return np.round(np.arange(lo, hi + STEP / 2, STEP), 2)


def fit(
    rows: Sequence[dict],
    strengths: np.ndarray,
    *,
    normal_weight: float = 0.25,
    hi: float = 1.5,
    a_min: float = -2.0,
    b_min: float = -1.6,
    c_min: float = -2.0,
    niqe_weight: float = 0.0,
) -> dict:
    """Best ``(a, b, c)`` for rows ``{kind, logmean, loghigh, psnr[], ssim[], niqe[]?}`` scored at ``strengths``.

    The objective per kind is ``PSNR + 20 SSIM - niqe_weight * NIQE`` (NIQE only with ``niqe_weight`` > 0,
    which needs rows from a sweep that recorded it).

    ``hi`` caps the strength (the scaled maps are clipped to [-1, 1], so above ~1.5 only the darkest frames
    gain); ``a_min`` / ``b_min`` / ``c_min`` are the grid's lower ends (``a`` goes up to 1, ``b`` and ``c``
    up to 0). A fit on a grid edge is named in ``at_edge``: widen the grid and refit.
    """
    S = np.asarray(strengths, dtype=float)
    if not 0.0 <= hi <= MAX_STRENGTH:
        raise ValueError(f"hi must be in [0, {MAX_STRENGTH:g}], got {hi}")
    if hi > S[-1] + 1e-9:
        raise ValueError(f"hi={hi} is above the sweep's largest strength {S[-1]:g}: sweep further")
    kind = np.array([r["kind"] for r in rows])
    lm = np.array([r["logmean"] for r in rows])
    lh = np.array([r["loghigh"] for r in rows])
    P = np.minimum(np.array([r["psnr"] for r in rows]), PSNR_CAP)
    Q = np.array([r["ssim"] for r in rows])
    if P.shape != (len(rows), len(S)) or Q.shape != P.shape:
        raise ValueError(f"rows hold {P.shape[-1]} scores each, the sweep has {len(S)} strengths")
    if niqe_weight < 0:
        raise ValueError(f"niqe_weight must be >= 0, got {niqe_weight}")
    has_niqe = all("niqe" in r for r in rows)
    if niqe_weight > 0 and not has_niqe:
        raise ValueError(
            "niqe_weight > 0 needs a sweep with NIQE scores (rerun scripts/fit_exposure.py without --rows)"
        )
    N = np.array([r["niqe"] for r in rows], dtype=float) if has_niqe else np.zeros_like(P)
    if N.shape != P.shape:
        raise ValueError(f"rows hold {N.shape[-1]} NIQE scores each, the sweep has {len(S)} strengths")
    if niqe_weight > 0 and not np.isfinite(N).all():
        raise ValueError(f"{int((~np.isfinite(N)).sum())} NIQE scores of the sweep are not finite")
    NW = N if niqe_weight > 0 else None  # unused NIQE (NaN or not) never enters the objective
    weights = {"sice": 1.0, "camvid_dark": 1.0, "camvid_normal": normal_weight}
    present = [k for k in KINDS if (kind == k).any()]

    def at(s: np.ndarray, *mats: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each matrix's score of each row at strength ``s`` (linear between the swept strengths)."""
        s = np.clip(s, S[0], S[-1])
        j = np.clip(np.searchsorted(S, s) - 1, 0, len(S) - 2)
        w = (s - S[j]) / (S[j + 1] - S[j])
        r = np.arange(len(s))
        return tuple(M[r, j] * (1 - w) + M[r, j + 1] * w for M in mats)

    def table(s: np.ndarray) -> dict:
        p, q, n = at(s, P, Q, N)
        out = {}
        for k in present:
            m = kind == k
            out[k] = {
                "psnr": round(float(p[m].mean()), 3),
                "ssim": round(float(q[m].mean()), 4),
                "n": int(m.sum()),
            }
            if has_niqe:
                ok = n[m][np.isfinite(n[m])]
                out[k]["niqe"] = round(float(ok.mean()), 3) if ok.size else None
        return out

    def objective(s: np.ndarray) -> float:
        p, q, n = at(s, P, Q, NW) if niqe_weight > 0 else (*at(s, P, Q), np.zeros(len(s)))
        return sum(
            weights[k] * (p[kind == k].mean() + 20 * q[kind == k].mean() - niqe_weight * n[kind == k].mean())
            for k in present
        )

    grids = {"a": _grid(a_min, 1.0), "b": _grid(b_min, 0.0), "c": _grid(c_min, 0.0)}
    best = max(
        ((objective(np.clip(a + b * lm + c * lh, 0.0, hi)), a, b, c)
         for a in grids["a"] for b in grids["b"] for c in grids["c"]),
        key=lambda t: t[0],
    )  # fmt: skip
    _, a, b, c = best
    chosen = {"a": a, "b": b, "c": c}
    return {
        "exposure": {"a": float(a), "b": float(b), "c": float(c), "lo": 0.0, "hi": float(hi)},
        "at_edge": [
            k for k, g in grids.items() if len(g) > 1 and chosen[k] in (g[0], g[-1]) and chosen[k] != 0.0
        ],
        "normal_weight": normal_weight,
        "niqe_weight": niqe_weight,
        "at_strength_1": table(np.ones(len(rows))),
        "with_fit": table(np.clip(a + b * lm + c * lh, 0.0, hi)),
    }

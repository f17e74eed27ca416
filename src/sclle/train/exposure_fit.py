"""Fit the adaptive-exposure numbers (:mod:`sclle.models.exposure`) to a strength sweep on training pairs.

``scripts/fit_exposure.py`` runs the network once per training pair and scores its output at every strength
of :func:`strengths_to` (PSNR/SSIM against the reference); :func:`fit` then grid-searches ``(a, b, c, d)`` of
``s = clamp(a + b * log_mean + c * log_highlights + d * log_spread, 0, hi)`` (``d`` only with ``d_max > 0``)
for the best weighted mean of PSNR + 20 SSIM
over the kinds of pairs, optionally minus ``niqe_weight`` times the outputs' NIQE (a no-reference naturalness
term: PSNR against a fused or original reference says nothing about how natural a lifted shadow looks,
docs/results.md). The sweep is kept (a JSON of rows), so a different grid or cap is a refit in
seconds, not a new sweep.

:func:`fit_terms` fits the same objective over any of the rule's terms, the colour ones included, by a
bounded Powell search (a grid over six weights would be too large): signs as :class:`ExposureControl`
requires them, restarts from a fixed seed, so a refit gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sclle.models.exposure import MAX_STRENGTH

#: The rule's terms: weight name -> (the statistic a sweep row holds, the sign the weight must have: -1 for
#: <= 0, +1 for >= 0, 0 for either), as :class:`sclle.models.exposure.ExposureControl` checks them.
TERMS = {
    "b": ("logmean", -1),
    "c": ("loghigh", -1),
    "d": ("logstd", +1),
    "e": ("chroma", 0),
    "f": ("saturation", 0),
}
#: Penalty on the squared weights of the standardised statistics: keeps the search away from rules that
#: lean on tiny differences between correlated statistics (it costs < 0.01 of the objective on real sweeps).
RIDGE = 1e-3

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


def _interp(S: np.ndarray, s: np.ndarray, *mats: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each matrix's score of each row at strengths ``s`` (..., rows), linear between the swept ``S``."""
    s = np.clip(s, S[0], S[-1])
    j = np.clip(np.searchsorted(S, s) - 1, 0, len(S) - 2)
    w = (s - S[j]) / (S[j + 1] - S[j])
    r = np.arange(s.shape[-1])
    return tuple(M[r, j] * (1 - w) + M[r, j + 1] * w for M in mats)


def _grid(lo: float, hi: float) -> np.ndarray:
    return np.round(np.arange(lo, hi + STEP / 2, STEP), 2)


def _kind_weights(sice_weight: float, normal_weight: float) -> dict[str, float]:
    """Weight of each kind of pair in the objective (darkened CamVid weighs 1)."""
    return {"sice": sice_weight, "camvid_dark": 1.0, "camvid_normal": normal_weight}


def _objective(
    rows: Sequence[dict], S: np.ndarray, *, normal_weight: float, sice_weight: float, niqe_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """The checked sweep's objective: each row's ``PSNR + 20 SSIM - niqe_weight * NIQE`` at each swept strength
    (rows, strengths), and each row's weight (its kind's weight over the kind's size)."""
    P = np.minimum(np.array([r["psnr"] for r in rows]), PSNR_CAP)
    Q = np.array([r["ssim"] for r in rows])
    if P.shape != (len(rows), len(S)) or Q.shape != P.shape:
        raise ValueError(f"rows hold {P.shape[-1]} scores each, the sweep has {len(S)} strengths")
    if not (np.isfinite(Q).all() and not np.isnan(P).any()):  # PSNR may be +inf (capped above), never NaN
        raise ValueError("the sweep holds NaN PSNR or non-finite SSIM scores")
    if niqe_weight < 0:
        raise ValueError(f"niqe_weight must be >= 0, got {niqe_weight}")
    if min(normal_weight, sice_weight) < 0:
        raise ValueError(f"kind weights must be >= 0, got {normal_weight=}, {sice_weight=}")
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
    G = P + 20 * Q - (niqe_weight * N if niqe_weight > 0 else 0.0)  # unused NIQE (NaN or not) never enters
    kind = np.array([r["kind"] for r in rows])
    weights = _kind_weights(sice_weight, normal_weight)
    row_w = np.array([weights[k] / (kind == k).sum() for k in kind])
    return G, row_w


def fit(
    rows: Sequence[dict],
    strengths: np.ndarray,
    *,
    normal_weight: float = 0.25,
    sice_weight: float = 1.0,
    hi: float = 1.5,
    a_min: float = -2.0,
    b_min: float = -1.6,
    c_min: float = -2.0,
    d_max: float = 0.0,
    niqe_weight: float = 0.0,
) -> dict:
    """Best ``(a, b, c[, d])`` for rows ``{kind, logmean, loghigh[, logstd], psnr[], ssim[], niqe[]?}`` at ``strengths``.

    The objective per kind is ``PSNR + 20 SSIM - niqe_weight * NIQE`` (NIQE only with ``niqe_weight`` > 0,
    which needs rows from a sweep that recorded it); the kinds are weighted ``sice_weight`` (real pairs),
    1 (darkened CamVid) and ``normal_weight`` (untouched CamVid).

    ``hi`` caps the strength (the scaled maps are clipped to [-1, 1], so above ~1.5 only the darkest frames
    gain); ``a_min`` / ``b_min`` / ``c_min`` are the grid's lower ends (``a`` goes up to 1, ``b`` and ``c``
    up to 0); ``d_max`` > 0 adds the log-luminance spread's weight ``d`` in [0, d_max] (rows need ``logstd``).
    Ties go to the first point in grid order (smallest ``a``, then ``b``, ``c``, ``d``). A fit on a grid edge is
    named in ``at_edge``: widen the grid and refit.
    """
    S = np.asarray(strengths, dtype=float)
    if not 0.0 <= hi <= MAX_STRENGTH:
        raise ValueError(f"hi must be in [0, {MAX_STRENGTH:g}], got {hi}")
    if hi > S[-1] + 1e-9:
        raise ValueError(f"hi={hi} is above the sweep's largest strength {S[-1]:g}: sweep further")
    if d_max < 0:
        raise ValueError(f"d_max must be >= 0, got {d_max}")
    if d_max > 0 and not all("logstd" in r for r in rows):
        raise ValueError("d_max > 0 needs rows with the log-luminance spread ('logstd'): rerun the sweep")
    lm = np.array([r["logmean"] for r in rows])
    lh = np.array([r["loghigh"] for r in rows])
    ls = np.array([r["logstd"] for r in rows]) if d_max > 0 else np.zeros(len(rows))
    G, row_w = _objective(
        rows, S, normal_weight=normal_weight, sice_weight=sice_weight, niqe_weight=niqe_weight
    )
    G = G * row_w[:, None]

    def at(s: np.ndarray, *mats: np.ndarray) -> tuple[np.ndarray, ...]:
        return _interp(S, s, *mats)

    def table(s: np.ndarray) -> dict:
        return _table(rows, S, s)

    grids = {"a": _grid(a_min, 1.0), "b": _grid(b_min, 0.0), "c": _grid(c_min, 0.0), "d": _grid(0.0, d_max)}
    best = (-np.inf, 0.0, 0.0, 0.0, 0.0)
    for b in grids["b"]:  # every a at once: (len(a), rows) strengths per (b, c, d)
        for c in grids["c"]:
            for d in grids["d"]:
                strength = np.clip(grids["a"][:, None] + (b * lm + c * lh + d * ls)[None, :], 0.0, hi)
                (score,) = at(strength, G)
                total = score.sum(axis=1)
                i = int(np.argmax(total))
                if total[i] > best[0] + 1e-9 or (
                    total[i] > best[0] - 1e-9 and grids["a"][i] < best[1]
                ):  # ties: the smallest a, as a loop over (a, b, c, d) in that order would keep
                    best = (float(total[i]), float(grids["a"][i]), float(b), float(c), float(d))
    _, a, b, c, d = best
    chosen = {"a": a, "b": b, "c": c, "d": d}
    exposure = {"a": a, "b": b, "c": c, "lo": 0.0, "hi": float(hi)}
    if d:  # as ExposureControl.config(): an entry without the spread term stays as it was
        exposure["d"] = d
    fitted = np.clip(a + b * lm + c * lh + d * ls, 0.0, hi)
    return {
        "exposure": exposure,
        "at_edge": [
            k for k, g in grids.items() if len(g) > 1 and chosen[k] in (g[0], g[-1]) and chosen[k] != 0.0
        ],
        "normal_weight": normal_weight,
        "sice_weight": sice_weight,
        "niqe_weight": niqe_weight,
        "at_strength_1": table(np.ones(len(rows))),
        "with_fit": table(fitted),
    }


def fit_terms(
    rows: Sequence[dict],
    strengths: np.ndarray,
    terms: Sequence[str] = ("b", "c", "d", "e", "f"),
    *,
    normal_weight: float = 0.25,
    sice_weight: float = 1.0,
    hi: float = 1.5,
    niqe_weight: float = 0.0,
    restarts: int = 6,
    seed: int = 0,
) -> dict:
    """Best ``a`` and weights of ``terms`` (names of :data:`TERMS`) for the objective of :func:`fit`.

    The statistics are standardised over the rows and the search runs on their weights with the signs of
    :data:`TERMS` as bounds (so the result always builds an :class:`ExposureControl`), from zero weights and
    ``restarts - 1`` seeded random starts, with a :data:`RIDGE` penalty. Returns the same fields as
    :func:`fit` (``at_edge`` empty: there is no grid), weights rounded to 3 decimals and scored as rounded.
    """
    from scipy.optimize import minimize

    unknown = [k for k in terms if k not in TERMS]
    if unknown or not terms:
        raise ValueError(f"terms must be some of {sorted(TERMS)}, got {list(terms)}")
    if not 0.0 < hi <= MAX_STRENGTH:
        raise ValueError(f"hi must be in (0, {MAX_STRENGTH:g}], got {hi}")
    S = np.asarray(strengths, dtype=float)
    if hi > S[-1] + 1e-9:
        raise ValueError(f"hi={hi} is above the sweep's largest strength {S[-1]:g}: sweep further")
    missing = sorted({TERMS[k][0] for k in terms for r in rows if TERMS[k][0] not in r})
    if missing:
        raise ValueError(f"the sweep's rows lack {missing}: refill them (scripts/fit_exposure.py --rows)")
    G, row_w = _objective(
        rows, S, normal_weight=normal_weight, sice_weight=sice_weight, niqe_weight=niqe_weight
    )
    X = np.array([[r[TERMS[k][0]] for k in terms] for r in rows], dtype=float)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (X - mu) / sd

    def score(s: np.ndarray) -> float:
        return float((_interp(S, s, G)[0] * row_w).sum())

    def loss(theta: np.ndarray) -> float:
        return -score(np.clip(theta[0] + Z @ theta[1:], 0.0, hi)) + RIDGE * float((theta[1:] ** 2).sum())

    bounds = [(-10.0, 10.0)] + [
        {-1: (-10.0, 0.0), +1: (0.0, 10.0), 0: (-10.0, 10.0)}[TERMS[k][1]] for k in terms
    ]
    rng = np.random.default_rng(seed)
    best = None
    for i in range(max(1, restarts)):
        start = np.r_[1.0, np.zeros(len(terms))]
        if i:
            start[1:] = [
                np.clip(v, lo, up)
                for v, (lo, up) in zip(rng.normal(0, 0.3, len(terms)), bounds[1:], strict=True)
            ]
        res = minimize(loss, start, method="Powell", bounds=bounds,
                       options={"maxiter": 20000, "xtol": 1e-4, "ftol": 1e-8})  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    theta = best.x
    raw = theta[1:] / sd
    values = {
        k: round(float(v), 3) + 0.0 for k, v in zip(terms, raw, strict=True)
    }  # + 0.0: no -0.0 in the entry
    a = round(float(theta[0] - (raw * mu).sum()), 3) + 0.0
    exposure = {"a": a, "b": values.get("b", 0.0), "c": values.get("c", 0.0), "lo": 0.0, "hi": float(hi)}
    exposure.update({k: values[k] for k in ("d", "e", "f") if values.get(k)})
    fitted = np.clip(a + X @ np.array([values[k] for k in terms]), 0.0, hi)
    return {
        "exposure": exposure,
        "terms": list(terms),
        "at_edge": [],
        "normal_weight": normal_weight,
        "sice_weight": sice_weight,
        "niqe_weight": niqe_weight,
        "at_strength_1": _table(rows, S, np.ones(len(rows))),
        "with_fit": _table(rows, S, fitted),
    }


def _table(rows: Sequence[dict], strengths: np.ndarray, s: np.ndarray) -> dict:
    """Per kind: mean PSNR / SSIM (and NIQE where the sweep has it) at the strengths ``s`` of the rows."""
    S = np.asarray(strengths, dtype=float)
    kind = np.array([r["kind"] for r in rows])
    P = np.minimum(np.array([r["psnr"] for r in rows]), PSNR_CAP)
    Q = np.array([r["ssim"] for r in rows])
    has_niqe = all("niqe" in r for r in rows)
    N = np.array([r["niqe"] for r in rows], dtype=float) if has_niqe else np.zeros_like(P)
    p, q, n = _interp(S, np.asarray(s, dtype=float), P, Q, N)
    out = {}
    for k in KINDS:
        m = kind == k
        if not m.any():
            continue
        out[k] = {
            "psnr": round(float(p[m].mean()), 3),
            "ssim": round(float(q[m].mean()), 4),
            "n": int(m.sum()),
        }
        if has_niqe:
            ok = n[m][np.isfinite(n[m])]
            out[k]["niqe"] = round(float(ok.mean()), 3) if ok.size else None
    return out


def cross_validate(
    rows: Sequence[dict],
    strengths: np.ndarray,
    terms: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    restarts: int = 3,
    **kwargs,
) -> dict:
    """``folds``-fold cross-validation of :func:`fit_terms`: each row scored by a rule fitted without it.

    Returns the objective of :func:`fit` on the held-out strengths (``objective``: the weighted sum over kinds
    of mean PSNR + 20 SSIM, higher is better) and the per-kind table, so sets of terms can be compared on
    training data before any of them is scored on the scorecard. ``kwargs`` go to :func:`fit_terms`.
    """
    if folds < 2 or folds > len(rows):
        raise ValueError(f"folds must be in [2, {len(rows)}], got {folds}")
    hi = kwargs.get("hi", 1.5)
    fold = np.random.default_rng(seed).permutation(len(rows)) % folds
    held = np.zeros(len(rows))
    for k in range(folds):
        train = [rows[i] for i in np.where(fold != k)[0]]
        ex = fit_terms(train, strengths, terms, restarts=restarts, **kwargs)["exposure"]
        for i in np.where(fold == k)[0]:
            s = ex["a"] + sum(ex.get(t, 0.0) * rows[i][TERMS[t][0]] for t in TERMS if ex.get(t, 0.0))
            held[i] = min(max(s, 0.0), hi)
    table = _table(rows, strengths, held)
    weights = _kind_weights(kwargs.get("sice_weight", 1.0), kwargs.get("normal_weight", 0.25))
    objective = sum(weights[k] * (v["psnr"] + 20 * v["ssim"]) for k, v in table.items())
    return {"terms": list(terms), "folds": folds, "objective": round(float(objective), 3), "held_out": table}


def grid_objective(
    rows: Sequence[dict], grid: Sequence[float], *, normal_weight: float = 0.25, sice_weight: float = 1.0
) -> dict:
    """The fit's objective (weighted mean PSNR + 20 SSIM over the kinds) at each value of a 1-D setting.

    ``rows`` hold ``psnr``/``ssim`` lists over ``grid`` instead of over strengths, e.g. the chroma-keeping
    weight of :mod:`sclle.models.chroma` at each pair's own strength (``fit_exposure.py --chroma``). Returns
    the objective per value, the best value (the smallest on a tie) and the per-kind table at each value.
    """
    G, w = _objective(rows, np.asarray(grid, dtype=float), normal_weight=normal_weight,
                      sice_weight=sice_weight, niqe_weight=0.0)  # fmt: skip
    score = (G * w[:, None]).sum(0) / w.sum()
    best = int(np.argmax(np.round(score, 9)))
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    table = {
        f"{v:g}": {k: {m: round(float(np.mean([r[m][j] for r in rows if r["kind"] == k])), 4)
                       for m in ("psnr", "ssim")} for k in kinds}
        for j, v in enumerate(grid)
    }  # fmt: skip
    objective = {f"{v:g}": round(float(score[j]), 4) for j, v in enumerate(grid)}
    return {"objective": objective, "best": float(grid[best]), "table": table}

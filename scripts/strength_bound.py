"""How far can a per-image strength rule go with a given network? An *analysis* on the scorecard's own images.

Never used to fit or select a shipped rule (that is ``scripts/fit_exposure.py``, on training pairs only): it sweeps
the network's curve strength over the scorecard's protocols (DICM, LIME: NIQE; SICE, CamVid moderate/strong:
PSNR/SSIM; 64 images each, full resolution) and then asks which issue-12 targets *any* rule of the luminance
statistics could meet at once, even one fitted on these very images (docs/results.md, session 11).

    python scripts/strength_bound.py sweep --model training/runs/sclle-default-18480/checkpoints/step_0018480.pt \
        --out reports/feas/sweep18480.json            # ~20 min on one thread
    python scripts/strength_bound.py bound reports/feas/sweep18480.json    # ~1 min
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: The peers' best scores on the same 64 images (docs/results.md, session 9): a target is met when beaten.
TARGETS = {
    "DICM niqe": 3.72, "LIME niqe": 3.94, "SICE psnr": 16.79, "SICE ssim": 0.730,
    "CamVid-moderate psnr": 19.61, "CamVid-moderate ssim": 0.942, "CamVid-strong psnr": 16.30,
    "CamVid-strong ssim": 0.724,
}  # fmt: skip
STRENGTHS = np.round(np.arange(0.5, 2.01, 0.1), 2)


def sweep(model: str, data_root: Path, limit: int, out: Path) -> None:
    import torch
    from tqdm.auto import tqdm

    from sclle.evaluate.suite import scorecard_protocols
    from sclle.metrics import create
    from sclle.models.base import apply_le_curves, scale_curves
    from sclle.models.exposure import colour_stats, luminance_stats
    from sclle.models.registry import load_weights

    net, _ = load_weights(model)
    net.exposure = None
    net.eval()
    psnr, ssim, niqe = create("psnr"), create("ssim"), create("niqe")
    rows = []
    protocols, _ = scorecard_protocols(data_root, out.parent, limit)
    for p in protocols:
        if p.name == "CamVid-normal":
            continue
        for item in tqdm(p.dataset.items(p.limit), desc=p.name):
            x, ref = p.dataset.load(item)
            x = x if x.dim() == 4 else x[None]
            with torch.no_grad():
                curves = net(x)
                m, h, sp = (float(v) for v in luminance_stats(x))
                ch, sat = (float(v) for v in colour_stats(x))
                row = {
                    "proto": p.name,
                    "logmean": m,
                    "loghigh": h,
                    "logstd": sp,
                    "chroma": ch,
                    "saturation": sat,
                }
                ys = [apply_le_curves(x, scale_curves(curves, float(s))).clamp(0, 1) for s in STRENGTHS]
                if ref is not None:
                    ref = ref if ref.dim() == 4 else ref[None]
                    row["psnr"] = [float(psnr(y, ref)) for y in ys]
                    row["ssim"] = [float(ssim(y, ref)) for y in ys]
                else:
                    row["niqe"] = [float(niqe(y)) for y in ys]
            rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": model, "strengths": STRENGTHS.tolist(), "rows": rows}))


def _at(M: np.ndarray, S: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = np.clip(
        s, S[0], S[-1]
    )  # below the sweep's 0.5: scored as 0.5 (flatters rules that leave photos alone)
    j = np.clip(np.searchsorted(S, s) - 1, 0, len(S) - 2)
    w = (s - S[j]) / (S[j + 1] - S[j])
    r = np.arange(len(s))
    return M[r, j] * (1 - w) + M[r, j + 1] * w


def bound(path: Path) -> None:
    data = json.loads(path.read_text())
    S, rows = np.asarray(data["strengths"]), data["rows"]
    protos = sorted({r["proto"] for r in rows})
    X = {
        p: np.array([[r["logmean"], r["loghigh"], r["logstd"]] for r in rows if r["proto"] == p])
        for p in protos
    }
    M = {p: {m: np.array([r[m] for r in rows if r["proto"] == p]) for m in ("psnr", "ssim", "niqe")
             if m in next(r for r in rows if r["proto"] == p)} for p in protos}  # fmt: skip

    def score(strength) -> dict[str, float]:
        return {f"{p} {m}": float(_at(A, S, strength(X[p])).mean()) for p in protos for m, A in M[p].items()}

    def met(o: dict[str, float]) -> list[str]:
        return [k for k, v in TARGETS.items() if (o[k] < v if "niqe" in k else o[k] > v)]

    for s0 in (1.0, 1.5, 2.0):
        o = score(lambda F, s0=s0: np.full(len(F), s0))
        print(f"strength {s0} everywhere: " + ", ".join(f"{k} {v:.3f}" for k, v in o.items()))
    for p in protos:
        for m, A in M[p].items():
            best = A.min(1) if m == "niqe" else A.max(1)
            print(f"{p} {m} at each image's own best strength (an oracle): {best.mean():.3f}")
            means = A.mean(0)
            j = int(means.argmin() if m == "niqe" else means.argmax())
            print(f"{p} {m} at the best single strength for all its images ({S[j]:g}): {means[j]:.3f}")
    results = []
    for hi in (1.5, 2.0):
        for a in np.arange(-6, 1.01, 0.25):
            for b in np.arange(-3, 0.01, 0.25):
                for c in np.arange(-5, 0.01, 0.25):
                    for d in (0.0, 0.5, 1.0, 1.5, 2.0):
                        o = score(lambda F, a=a, b=b, c=c, d=d, hi=hi: np.clip(a + F @ [b, c, d], 0, hi))
                        results.append((met(o), (hi, a, b, c, d), o))
    most = max(len(m) for m, _, _ in results)
    print(f"\nmost targets any luminance rule meets on these images: {most} of {len(TARGETS)}")
    need = ("SICE psnr", "SICE ssim", "CamVid-strong psnr", "CamVid-strong ssim")
    ok = [t for t in results if all(k in t[0] for k in need)]
    if ok:
        m, rule, o = max(ok, key=lambda t: t[2]["CamVid-moderate ssim"])
        print(f"best moderate SSIM of the rules that keep SICE and the strong pairs: {o['CamVid-moderate ssim']:.3f} "
              f"(hi, a, b, c, d = {tuple(round(float(v), 2) for v in rule)})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--model", required=True)
    s.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    s.add_argument("--limit", type=int, default=64)
    s.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("bound")
    b.add_argument("sweep_json", type=Path)
    a = ap.parse_args()
    if a.cmd == "sweep":
        sweep(a.model, a.data_root, a.limit, a.out)
    else:
        bound(a.sweep_json)


if __name__ == "__main__":
    main()

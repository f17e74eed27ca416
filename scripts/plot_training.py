"""Loss curves of a training run as one PNG: every term of ``log.csv`` (weighted, as logged) and the
validation NIQE/brightness of ``val.csv``, each smoothed with a running mean.

    python scripts/plot_training.py runs/cpu-scratch --out docs/img/cpu_scratch_curves.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from sclle.core.files import atomic_write
from sclle.evaluate.plots import figure_png, pyplot

SKIP = ("step", "seconds", "lr")


def _read(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return {k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in rows[0]}


def _smooth(v: np.ndarray, n: int) -> np.ndarray:
    if len(v) < n or n <= 1:
        return v
    k = np.ones(n) / n
    return np.convolve(np.pad(v, (n // 2, n - 1 - n // 2), mode="edge"), k, mode="valid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--smooth", type=int, default=10, help="running mean over this many logged rows")
    a = ap.parse_args()
    log = _read(a.run / "log.csv")
    terms = [k for k in log if k not in SKIP]
    val = _read(a.run / "val.csv") if (a.run / "val.csv").is_file() else {}
    plt = pyplot()
    n = len(terms) + (2 if val else 0)
    cols = 4
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(4 * cols, 2.6 * -(-n // cols)), squeeze=False)
    sec = log["seconds"]  # restarts from 0 in each resumed session: add the segments up
    ends = np.append(sec[:-1][np.diff(sec) < 0], sec[-1])
    hours = float(ends.sum()) / 3600
    fig.suptitle(f"{a.run.name}: {int(log['step'][-1])} steps, {hours:.1f} h of training", fontsize=11)
    panels = [(t, log["step"], log[t], True) for t in terms]
    panels += [(f"val {k}", val["step"], val[k], False) for k in ("niqe", "brightness") if k in val]
    for ax, (name, x, y, smooth) in zip(axes.flat, panels, strict=False):
        if smooth:
            ax.plot(x, y, color="0.8", lw=0.6)
            ax.plot(x, _smooth(y, a.smooth), color="C0", lw=1.4)
        else:
            ax.plot(x, y, "o-", color="C1", lw=1.4, ms=3)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(a.out, figure_png(fig))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

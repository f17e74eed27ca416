"""Quick diagnostics of enhancers or training checkpoints on DICM + LIME: a table and a contact sheet.

For an A/B between two branches of a run, at equal steps, before spending a scorecard on them. Images
are downscaled to at most ``--max-side`` px; per model: NIQE (DICM, LIME), the 2nd-percentile
luminance of the output (black level: a veil lifts it), its mean luminance, and the colourfulness of
Hasler & Süsstrunk (2003) relative to the input's (below 1: the output is greyer than the input
although brighter — the "washed" look). A diagnostic, not a calibrated metric of the registry.

    python scripts/compare_checkpoints.py scl-lle-official runs/a/checkpoints/step_0003500.pt \
        runs/b/checkpoints/step_0003500.pt --data ../shared/data --out reports/ab

Writes ``OUT/table.md`` and ``OUT/sheet.png`` (input | each model, five photos; dataset images, so
``reports/`` is not committed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sclle import imageio
from sclle.core.files import atomic_write
from sclle.enhancement.api import build_engine
from sclle.metrics import create
from sclle.metrics.color import luminance

SHEET = ("DICM/37.jpg", "DICM/05.jpg", "DICM/60.jpg", "LIME/4.bmp", "LIME/7.bmp")


def colourfulness(y: torch.Tensor) -> float:
    r, g, b = y[0]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(torch.sqrt(rg.var() + yb.var()) + 0.3 * torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def small(path: Path, side: int) -> torch.Tensor:
    x = imageio.to_tensor(imageio.read_image(path).rgb)
    s = side / max(x.shape[-2:])
    return F.interpolate(x, scale_factor=s, mode="area") if s < 1 else x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="registry names, weights files or training checkpoints")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("reports/ab"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    sets = {name: imageio.find_images([a.data / name])[0] for name in ("DICM", "LIME")}
    xs = {name: [small(p, a.max_side) for p, _ in items] for name, items in sets.items()}
    niqe = create("niqe")
    lines = [
        "| model | DICM niqe ↓ | LIME niqe ↓ | black level (2 % luma) | mean luma | colourfulness vs input |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [[small(a.data / n, 300) for n in SHEET]]
    for m in ["input", *a.models]:
        eng = None if m == "input" else build_engine(m, device="cpu")
        n, black, mean, colour = {}, [], [], []
        for name, images in xs.items():
            scores = []
            for x in images:
                y = x if eng is None else eng(x).clamp(0, 1)
                scores.append(float(niqe(y)))
                lum = luminance(y).flatten()
                black.append(float(torch.quantile(lum, 0.02)))
                mean.append(float(lum.mean()))
                colour.append(colourfulness(y) / max(colourfulness(x), 1e-6))
            n[name] = float(np.mean(scores))
        lines.append(
            f"| {m} | {n['DICM']:.3f} | {n['LIME']:.3f} | {np.mean(black):.3f} | {np.mean(mean):.3f} | "
            f"×{np.mean(colour):.2f} |"
        )
        print(lines[-1], flush=True)
        if eng is not None:
            rows.append([eng(x).clamp(0, 1) for x in rows[0]])
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write(a.out / "table.md", "\n".join(lines) + "\n")
    strips = [torch.cat([col[i] for col in rows], dim=-1) for i in range(len(SHEET))]
    w = max(s.shape[-1] for s in strips)
    sheet = torch.cat([F.pad(s, (0, w - s.shape[-1])) for s in strips], dim=-2)
    pixels = imageio.convert.quantize_tensor(sheet)
    tmp = a.out / ".sheet.png.tmp"
    Image.fromarray(pixels).save(tmp, format="PNG")
    tmp.replace(a.out / "sheet.png")
    print(f"wrote {a.out / 'table.md'} and {a.out / 'sheet.png'}")


if __name__ == "__main__":
    main()

"""Regenerate ``src/sclle/assets/sample_dark.jpg``, the low-light demo image shipped with sclle.

Source: ``skimage.data.astronaut()`` (NASA photograph of Eileen Collins, public domain), 512x512.
It is darkened on its 8-bit sRGB values, ``out = round(255 * 0.6 * (x / 255) ** 2.5)``, so it looks
like an under-exposed photo (gamma 2.5 crushes the shadows, exposure 0.6 lowers the highlights), and
saved as JPEG (quality 95, no chroma subsampling; ~90 KB, like a typical camera file).
See ``src/sclle/assets/PROVENANCE.md``. Run from the repository root::

    python examples/make_sample.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

GAMMA = 2.5
EXPOSURE = 0.6
WIDTH = 512
OUT = Path(__file__).resolve().parents[1] / "src" / "sclle" / "assets" / "sample_dark.jpg"


def make_sample() -> np.ndarray:
    """The darkened sample as an 8-bit HxWx3 array."""
    img = Image.fromarray(data.astronaut())
    if img.width != WIDTH:  # astronaut is already 512 px wide; kept for other sources
        img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.Resampling.LANCZOS)
    x = np.asarray(img).astype(np.float64) / 255.0
    dark = EXPOSURE * x**GAMMA
    return np.rint(dark * 255.0).astype(np.uint8)


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_sample()).save(OUT, quality=95, subsampling=0)
    arr = np.asarray(Image.open(OUT))
    size_kib = OUT.stat().st_size / 1024
    print(f"wrote {OUT} ({size_kib:.0f} KiB, {arr.shape[1]}x{arr.shape[0]}, mean {arr.mean():.1f}/255)")


if __name__ == "__main__":
    main()

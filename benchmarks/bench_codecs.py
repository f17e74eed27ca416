"""Codec costs of ``sclle enhance``'s reading and writing (issue 15, item 4): Pillow against OpenCV.

For each image of the given folders: decode (Pillow ``open+convert('RGB')`` as ``read_image`` does, and
``cv2.imdecode``), encode PNG at zlib levels 1 / 3 / 6 (Pillow ``compress_level``, OpenCV
``IMWRITE_PNG_COMPRESSION``) and JPEG at quality 95 with 4:4:4 chroma (what sclle writes for JPEG inputs).
Reports milliseconds per megapixel (best of ``--repeats``) and the output bytes relative to PNG level 6,
so the cost of a codec setting can be set against the enhancer's compute per megapixel.

    python benchmarks/bench_codecs.py --data ../shared/data/DICM ../shared/data/LIME --threads 1 \
        --out benchmarks/results/codecs.json
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, features
from timing import best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument(
        "--threads", type=int, default=1, help="OpenCV threads (Pillow's codecs are single-threaded)"
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="images per folder (evenly spaced)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    files = []
    for d in a.data:
        fs = sorted(p for p in Path(d).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        if a.limit and len(fs) > a.limit:
            fs = [fs[round(i * (len(fs) - 1) / (a.limit - 1))] for i in range(a.limit)]
        files += fs
    cases = {
        "decode pillow": lambda f, arr, raw: Image.open(io.BytesIO(raw)).convert("RGB").load(),
        "decode opencv": lambda f, arr, raw: cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR),
    }
    sizes: dict[str, float] = {}
    for lvl in (1, 3, 6):
        cases[f"png{lvl} pillow"] = lambda f, arr, raw, lvl=lvl: _pil(arr, "PNG", compress_level=lvl)
        cases[f"png{lvl} opencv"] = lambda f, arr, raw, lvl=lvl: _cv(
            arr, ".png", [cv2.IMWRITE_PNG_COMPRESSION, lvl]
        )
    cases["jpeg95 pillow"] = lambda f, arr, raw: _pil(arr, "JPEG", quality=95, subsampling=0)
    cases["jpeg95 opencv"] = lambda f, arr, raw: _cv(
        arr,
        ".jpg",
        [
            cv2.IMWRITE_JPEG_QUALITY,
            95,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ],
    )
    secs = {k: 0.0 for k in cases}
    mpx = 0.0
    for f in files:
        raw = f.read_bytes()
        arr = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        mpx += arr.shape[0] * arr.shape[1] / 1e6
        for k, fn in cases.items():
            secs[k] += best(lambda fn=fn, f=f, arr=arr, raw=raw: fn(f, arr, raw), a.repeats, warmup=False)
            if not k.startswith("decode"):
                sizes[k] = sizes.get(k, 0) + len(fn(f, arr, raw))
    print(
        f"{len(files)} images, {mpx:.1f} Mpx, libjpeg-turbo in Pillow: {features.check_feature('libjpeg_turbo')}, "
        f"OpenCV threads {a.threads}"
    )
    rows = []
    for k, s in secs.items():
        rel = sizes[k] / sizes["png6 pillow"] if k in sizes and k.startswith("png") else None
        rows.append({"case": k, "ms_per_mpx": 1000 * s / mpx, "bytes_vs_png6": rel})
        print(f"  {k:<15} {1000 * s / mpx:8.1f} ms/Mpx" + (f"   size {rel:5.3f}x png6" if rel else ""))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"images": len(files), "mpx": mpx, "rows": rows}, indent=1))


def _pil(arr: np.ndarray, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format=fmt, **kw)
    return out.getvalue()


def _cv(arr: np.ndarray, ext: str, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), params)
    assert ok
    return buf.tobytes()


if __name__ == "__main__":
    main()

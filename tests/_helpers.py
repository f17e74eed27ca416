"""Plain helpers shared by several test modules; ``conftest.py`` re-exports them next to the fixtures.

Test modules import these through ``conftest``, never from each other: a helper two files need belongs here,
so running one test file never depends on importing another (and its module-level fixtures and side effects).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCLLE_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside the shared folder, or skip the test with the reason."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (set SCLLE_SHARED to the shared data folder); not present here")
    return p


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` (its pixel data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------------ images


def textured_scene(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A textured float scene in [0.05, 0.95] (blocks + a gradient)."""
    base = rng.random((size // 8, size // 8, 3))
    img = np.kron(base, np.ones((8, 8, 1)))
    ramp = np.linspace(0, 1, size)[None, :, None]
    return np.clip(0.05 + 0.6 * img + 0.3 * ramp, 0, 1)


def exposures(scene: np.ndarray, gains=(0.08, 0.2, 0.45, 1.0, 1.6)) -> list[np.ndarray]:
    """The scene at several exposures (clipped gains), darkest first: a tiny multi-exposure sequence."""
    return [np.clip(scene * g, 0, 1) for g in gains]


def write_rgb(path, rgb: np.ndarray) -> None:
    """Write a float RGB array in [0, 1] through the package's own writer (as the pool builder reads it)."""
    from sclle import imageio

    rgb = rgb.astype(np.float32)
    imageio.write_image(path, imageio.from_array(rgb), rgb, overwrite=True)


# ------------------------------------------------------------------------------------------ CamVid layouts


def make_street_camvid(root, n: int = 4, h: int = 40, w: int = 56, seed: int = 0) -> None:
    """A tiny CamVid-layout dataset for street batches: train/val + annot (sky over road, a class strip)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = (rng.random((h, w, 3)) * 200 + 40).astype(np.uint8)
            lbl = np.zeros((h, w), np.uint8)
            lbl[: h // 2] = 0  # sky
            lbl[h // 2 :] = 3  # road
            lbl[:, : w // 4] = 1 + i % 5
            Image.fromarray(img).save(root / split / f"img{i}.png")
            Image.fromarray(lbl).save(root / f"{split}annot" / f"img{i}.png")


def make_random_camvid(root, splits=("train", "val", "test"), n=2, size=(24, 32), seed=0):
    """Tiny CamVid, SegNet layout, random pixels and labels (11 = void); returns {split: [labels]}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in splits:
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        labels = []
        for i in range(n):
            img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            lbl = rng.integers(0, 12, size, dtype=np.uint8)  # 11 = void
            Image.fromarray(img).save(root / split / f"f{i:03d}.png")
            Image.fromarray(lbl, mode="L").save(root / f"{split}annot" / f"f{i:03d}.png")
            labels.append(lbl)
        out[split] = labels
    return out


# ------------------------------------------------------------------------------------------ training


def make_train_cfg(data: Path, out: Path, **over):
    """A tiny CPU training config (crop 32, batch 2, 20 steps) on the ``data`` fixture's folders.

    ``over`` holds ``key=value`` overrides in the dotted form of ``sclle train --set``.
    """
    from sclle.train.config import load_config

    sets = [
        f"data.root={data / 'camvid'}",
        f"data.pool={data / 'pool'}",
        f"data.val_dir={data / 'val'}",
        "data.preload=cpu",
        "device=cpu",
        "model.init_std=0.02",
        "loss.weights.segmentation_ce=0",  # no segmenter in tests; semantic brightness stays on
        "optim.lr=1e-3",
        "schedule.steps=20",
        "schedule.batch=2",
        "schedule.crop=32",
        "schedule.n_pos=2",
        "schedule.n_neg=2",
        f"logging.out={out}",
        f"logging.cache_dir={data / 'cache'}",
        "logging.log_every=5",
        "logging.image_every=10",
        "logging.ckpt_every=10",
        "logging.val_every=10",
        "logging.progress=false",
        "logging.name=tiny",
    ] + [f"{k}={v}" for k, v in over.items()]
    return load_config(None, sets)

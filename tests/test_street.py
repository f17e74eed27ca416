"""Street-scene training batches: crops, flips, seeded darkening, DDP sharding, preload modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sclle.data.darken import DarkenProtocol
from sclle.data.street import StreetScenes


def make_camvid(root, n: int = 4, h: int = 40, w: int = 56, seed: int = 0) -> None:
    """A tiny CamVid-layout dataset: train/*.png + trainannot/*.png (labels 0..10, some void 11)."""
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


@pytest.fixture
def camvid(tmp_path):
    make_camvid(tmp_path / "camvid")
    return tmp_path / "camvid"


def test_batch_shapes_and_darkening(camvid):
    proto = DarkenProtocol(gamma_range=(2.0, 3.0), exposure_range=(0.5, 0.8))
    ds = StreetScenes("camvid", camvid, crop=32, protocol=proto, seed=3)
    b = ds.batch(0, 4)
    assert b.low.shape == (4, 3, 32, 32) and b.labels.shape == (4, 32, 32)
    assert b.labels.dtype == torch.long and set(b.labels.unique().tolist()) <= set(range(11)) | {255}
    assert float(b.low.max()) <= 1 and float(b.low.mean()) < 0.6 * float(b.clean.mean())
    # labels are cropped with the image: the region boundaries fall on the same pixels
    again = ds.batch(0, 4)
    assert torch.equal(again.low, b.low) and torch.equal(again.labels, b.labels)
    assert not torch.equal(ds.batch(1, 4).clean, b.clean)


def test_shards_reproduce_the_global_batch(camvid):
    proto = DarkenProtocol(gamma_range=(1.5, 3.0), exposure_range=(0.4, 1.0))
    ds = StreetScenes("camvid", camvid, crop=24, protocol=proto, seed=0)
    full = ds.batch(5, 4)
    parts = [ds.batch(5, 4, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat([p.low for p in parts]), full.low)
    assert torch.equal(torch.cat([p.labels for p in parts]), full.labels)
    with pytest.raises(ValueError):
        ds.batch(0, 3, world_size=2)


def test_preload_modes_agree_and_small_images_upscaled(camvid):
    a = StreetScenes("camvid", camvid, crop=48, preload="none", seed=1)
    b = StreetScenes("camvid", camvid, crop=48, preload="cpu", seed=1)
    ba, bb = a.batch(2, 3), b.batch(2, 3)
    assert ba.low.shape == (3, 3, 48, 48)  # images are 40 px high: upscaled to fit the crop
    assert torch.equal(ba.low, bb.low) and torch.equal(ba.labels, bb.labels)
    assert torch.equal(ba.low, ba.clean)  # no protocol: no darkening


def test_hflip_flips_image_and_label_together(camvid):
    ds = StreetScenes("camvid", camvid, crop=40, hflip=True, seed=0)
    plans = [ds.plan(s, 1)[0] for s in range(20)]
    assert any(p[3] for p in plans) and not all(p[3] for p in plans)
    noflip = StreetScenes("camvid", camvid, crop=40, hflip=False, seed=0)
    for s, p in enumerate(plans):
        if p[3]:
            x, y = ds.batch(s, 1), noflip.batch(s, 1)
            assert torch.equal(x.clean, y.clean.flip(-1)) and torch.equal(x.labels, y.labels.flip(-1))
            break

"""Street-scene training batches: crops, flips, seeded darkening, DDP sharding, preload modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sclle.data.darken import DarkenProtocol
from sclle.data.street import StreetScenes

from conftest import make_street_camvid


@pytest.fixture
def camvid(tmp_path):
    make_street_camvid(tmp_path / "camvid")
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


# ------------------------------------------------------------------ unlabelled extra photos


def _photos(root, n: int = 3, size: int = 48):
    from sclle.data.photos import UnlabelledPhotos

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray((rng.random((size, size + 8, 3)) * 255).astype(np.uint8)).save(root / f"{i}.jpg")
    (root / "notes.txt").write_text("not an image")
    return UnlabelledPhotos(root)


def test_unlabelled_photos_are_all_void(tmp_path):
    from sclle.data.photos import UnlabelledPhotos
    from sclle.errors import SclleError

    photos = _photos(tmp_path / "photos")
    assert len(photos) == 3 and [p.name for p in photos.files] == ["0.jpg", "1.jpg", "2.jpg"]
    img, lbl = photos.get_uint8(1)
    assert img.shape == (3, 48, 56) and img.dtype == torch.uint8
    assert lbl.shape == (48, 56) and bool((lbl == 255).all())
    assert len(UnlabelledPhotos(tmp_path / "photos", max_images=2)) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(SclleError, match="no images"):
        UnlabelledPhotos(tmp_path / "empty")
    with pytest.raises(SclleError, match="not found"):
        UnlabelledPhotos(tmp_path / "missing")


def test_extra_photos_mix_into_batches_undarkened(camvid, tmp_path):
    proto = DarkenProtocol(gamma_range=(2.0, 3.0), exposure_range=(0.5, 0.8))
    photos = _photos(tmp_path / "photos")
    plain = StreetScenes("camvid", camvid, crop=32, protocol=proto, seed=3)
    # fraction 0: the extra set is ignored and the batches are exactly the plain ones
    zero = StreetScenes("camvid", camvid, crop=32, protocol=proto, seed=3, extra=photos, extra_fraction=0.0)
    assert torch.equal(zero.batch(2, 4).low, plain.batch(2, 4).low)
    # fraction 1: every crop is an extra photo, all-void labels, not darkened
    only = StreetScenes("camvid", camvid, crop=32, protocol=proto, seed=3, extra=photos, extra_fraction=1.0)
    b = only.batch(0, 4)
    assert bool((b.indices >= len(plain)).all()) and bool((b.labels == 255).all())
    assert torch.equal(b.low, b.clean)
    # a mix: the street crops keep their labels and darkening, same crop plan for the street part
    mix = StreetScenes("camvid", camvid, crop=32, protocol=proto, seed=3, extra=photos, extra_fraction=0.5)
    seen_extra = seen_street = False
    for step in range(6):
        m = mix.batch(step, 4)
        for k in range(4):
            if int(m.indices[k]) >= len(plain):
                seen_extra = True
                assert torch.equal(m.low[k], m.clean[k]) and bool((m.labels[k] == 255).all())
            else:
                seen_street = True
                assert float(m.low[k].mean()) < float(m.clean[k].mean())
    assert seen_extra and seen_street
    with pytest.raises(ValueError, match="extra_fraction"):
        StreetScenes("camvid", camvid, crop=32, extra=photos, extra_fraction=1.5)
    with pytest.raises(ValueError, match="extra dataset"):
        StreetScenes("camvid", camvid, crop=32, extra_fraction=0.5)

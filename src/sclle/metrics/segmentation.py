"""Mean intersection-over-union for semantic segmentation, accumulated in a confusion matrix.

mIoU must be computed from counts summed over the whole dataset (not averaged per image), so the
accumulator keeps an integer (C, C) confusion matrix: rows are ground-truth classes, columns the
predictions. Pixels whose label is ``ignore_index`` (255, or e.g. CamVid's "void" 11) do not count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn


def _check_labels(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None
) -> torch.Tensor:
    """Validate label maps; return the mask of pixels that count (target != ignore_index)."""
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError("pred and target must be torch tensors")
    if pred.is_floating_point() or target.is_floating_point() or pred.dtype == torch.bool:
        raise ValueError(
            f"pred and target must be integer label maps, got {pred.dtype} and {target.dtype} "
            "(for logits use pred = logits.argmax(1))"
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.numel() and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(
            f"pred labels must lie in [0, {num_classes}), got [{pred.min().item()}, {pred.max().item()}]"
        )
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    t = target[valid]
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(
            f"target labels must lie in [0, {num_classes}) or equal ignore_index={ignore_index}, "
            f"got [{t.min().item()}, {t.max().item()}]"
        )
    return valid


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """(C, C) int64 counts, ``cm[t, p]`` = pixels of true class t predicted as p; ignored pixels skipped."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    valid = _check_labels(pred, target, num_classes, ignore_index)
    idx = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Per-class IoU = TP / (TP + FP + FN) as float64; NaN for a class absent from both pred and target."""
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got {tuple(cm.shape)}")
    cm = cm.to(torch.float64)
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def miou_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """Mean IoU over the classes present in pred or target (nanmean); NaN if there are none."""
    return torch.nanmean(iou_from_confusion(cm))


class ConfusionMatrix(nn.Module):
    """Dataset-level accumulator: ``update(pred, target)`` per batch, then ``iou()`` / ``miou()``.

    ``forward`` is ``update`` (so it can sit in an ``nn.ModuleDict`` of metrics) and returns the
    batch's own confusion matrix. The counts are a buffer: ``.to(device)`` moves them with the module.
    """

    lower_is_better = False

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.register_buffer("matrix", torch.zeros(num_classes, num_classes, dtype=torch.int64))

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Add one batch of integer label maps (any equal shapes, e.g. (B, H, W)); returns its matrix."""
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index).to(self.matrix.device)
        self.matrix += cm
        return cm

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.update(pred, target)

    def iou(self) -> torch.Tensor:
        """Per-class IoU (C,) float64, NaN for classes seen in neither predictions nor targets."""
        return iou_from_confusion(self.matrix)

    def miou(self) -> torch.Tensor:
        """Mean of :meth:`iou` over the classes that occurred (scalar float64 tensor)."""
        return miou_from_confusion(self.matrix)

    def pixel_accuracy(self) -> torch.Tensor:
        """Fraction of counted pixels whose class is right (scalar float64; NaN if none counted)."""
        total = self.matrix.sum()
        correct = self.matrix.diagonal().sum().to(torch.float64)
        return correct / total if total > 0 else torch.tensor(float("nan"), dtype=torch.float64)

    def reset(self) -> None:
        self.matrix.zero_()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, ignore_index={self.ignore_index}"


__all__ = [
    "ConfusionMatrix",
    "SegConfusion",
    "confusion_matrix",
    "iou_from_confusion",
    "miou_from_confusion",
    "segmenter_confusion",
]


class SegConfusion(ConfusionMatrix):
    """:class:`sclle.metrics.ConfusionMatrix` on a chosen device, with float summaries for reports."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: str | torch.device = "cpu") -> None:
        super().__init__(num_classes, ignore_index)
        self.to(device)

    def miou(self) -> float:  # type: ignore[override]
        return float(super().miou())

    def pixel_accuracy(self) -> float:  # type: ignore[override]
        return float(super().pixel_accuracy())

    def per_class_iou(self, class_names: Sequence[str], digits: int | None = None) -> dict[str, float]:
        """``{class name: IoU}``, rounded to ``digits`` if given (what logs and export metadata record)."""
        iou = [float(v) for v in self.iou().tolist()]
        return dict(zip(class_names, iou if digits is None else [round(v, digits) for v in iou], strict=True))

    def summary(self, class_names: Sequence[str], digits: int = 5) -> dict:
        """``{"miou", "pixel_accuracy", "per_class_iou"}`` rounded to ``digits``: the scores an export records."""
        return {
            "miou": round(self.miou(), digits),
            "pixel_accuracy": round(self.pixel_accuracy(), digits),
            "per_class_iou": self.per_class_iou(class_names, digits),
        }


@torch.no_grad()
def segmenter_confusion(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    *,
    device: str | torch.device,
    amp: bool = False,
    ignore_index: int = 255,
) -> SegConfusion:
    """Confusion matrix of ``model``'s argmax over (image, label) batches already on ``device``.

    The one evaluation loop of a segmenter (``sclle segment-eval``, the segmentation trainer's val/test):
    eval mode while it runs, the caller's mode restored after; ``amp`` is bf16 autocast, on CUDA only.
    """
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    conf = SegConfusion(num_classes, ignore_index, device=dev)
    try:
        for x, y in batches:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
                logits = model(x)
            conf.update(logits.argmax(1), y)
    finally:
        model.train(was_training)
    return conf

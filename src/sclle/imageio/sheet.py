"""The before/after comparison sheet written by ``sclle enhance --compare``."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["side_by_side"]


def side_by_side(
    before: np.ndarray, after: np.ndarray, *, labels: tuple[str, str] | None = ("input", "enhanced")
) -> np.ndarray:
    """Input and result next to each other (float32 HxWx3), for ``--compare``.

    ``before`` is resized to ``after``'s size if they differ; a thin white bar separates them and each
    half gets a small label (pass ``labels=None`` for none).
    """
    for name, a in (("before", before), ("after", after)):
        if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"{name} must be an HxWx3 array, got shape {getattr(a, 'shape', None)}")
    after = np.clip(after.astype(np.float32), 0.0, 1.0)
    before = np.clip(before.astype(np.float32), 0.0, 1.0)
    h, w = after.shape[:2]
    if before.shape[:2] != (h, w):
        before = cv2.resize(before, (w, h), interpolation=cv2.INTER_AREA)
    halves = [before.copy(), after.copy()]
    if labels is not None:
        scale = max(0.35, min(h, w) / 700)
        thick = max(1, round(scale * 1.5))
        pad = max(2, round(4 * scale))
        font = cv2.FONT_HERSHEY_SIMPLEX
        for half, text in zip(halves, labels, strict=True):
            (tw, th), base = cv2.getTextSize(text, font, scale, thick)
            box_h, box_w = min(h, th + base + 2 * pad), min(w, tw + 2 * pad)
            ink = np.zeros((box_h, box_w), dtype=np.uint8)  # putText draws on 8-bit images only
            cv2.putText(ink, text, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
            box = half[:box_h, :box_w]
            box *= 0.25  # darken behind the label so it reads on bright and dark images
            box += (ink.astype(np.float32) / 255.0)[..., None] * (1.0 - box)
    bar = np.ones((h, max(2, w // 128), 3), dtype=np.float32)
    return np.concatenate([halves[0], bar, halves[1]], axis=1)

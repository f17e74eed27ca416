"""The contrastive pool at training time: the pool's files, their pixels, sampling.

SCL-LLE pulls the enhanced image towards *positives* (normally exposed images) and pushes it away
from *negatives* (under- and over-exposed images), comparing VGG Gram matrices and mean brightness.
The pool is built offline by :mod:`sclle.data.pool_builder` (``sclle prepare-contrast``);
:class:`ContrastPool` loads it and samples positives/negatives for each training step. The VGG
statistics of its images need the losses, which sit above data, so they live in
:class:`sclle.train.pool_stats.StatsPool` (computed once, cached on disk).

The builder's public names are re-exported here (``from sclle.data.contrast import build_pool`` keeps
working).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sclle import imageio
from sclle.data.pool_builder import (
    NEGATIVES_DIR,
    POOL_FILE,
    POOL_FORMAT,
    POSITIVES_DIR,
    PoolParams,
    Scene,
    alignment,
    build_pool,
    check_scene,
    contact_sheet,
    discover_scenes,
    mertens_fusion,
    scenes_from_csv,
    scenes_from_sice,
)
from sclle.errors import SclleError

__all__ = [
    "ContrastPool",
    # the builder's (sclle.data.pool_builder)
    "NEGATIVES_DIR",
    "POOL_FILE",
    "POOL_FORMAT",
    "POSITIVES_DIR",
    "PoolParams",
    "Scene",
    "alignment",
    "build_pool",
    "check_scene",
    "contact_sheet",
    "discover_scenes",
    "mertens_fusion",
    "scenes_from_csv",
    "scenes_from_sice",
]


def _load_resized(path: Path, size: int) -> torch.Tensor:
    """(3, size, size) float: short side resized to ``size`` (antialiased), then centre-cropped."""
    x = imageio.to_tensor(imageio.read_image(path).rgb)
    h, w = x.shape[-2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[0, :, top : top + size, left : left + size].clamp(0.0, 1.0)


@dataclass
class ContrastPool:
    """A pool written by :func:`build_pool`: file lists, images, sampling."""

    root: Path
    positives: list[Path] = field(default_factory=list)
    negatives: list[Path] = field(default_factory=list)
    #: 0 = under-exposed, 1 = over-exposed, one per negative.
    kinds: list[int] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> ContrastPool:
        root = Path(root)
        if not (root / POOL_FILE).is_file():
            raise SclleError(
                "not a contrast pool (no pool.json); build one with `sclle prepare-contrast`", root
            )
        meta = json.loads((root / POOL_FILE).read_text())
        pos = sorted((root / POSITIVES_DIR).glob("*.png"))
        negs, kinds = [], []
        for k, folder in enumerate(NEGATIVES_DIR.values()):
            files = sorted((root / folder).glob("*.png"))
            negs += files
            kinds += [k] * len(files)
        if not pos or not negs:
            raise SclleError(
                f"contrast pool has {len(pos)} positives and {len(negs)} negatives; needs both", root
            )
        return cls(root=root, positives=pos, negatives=negs, kinds=kinds, meta=meta)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def __len__(self) -> int:
        return len(self.positives) + len(self.negatives)

    def content_hash(self) -> str:
        """sha256 over every pool image's relative path and bytes (part of the statistics' cache key)."""
        h = hashlib.sha256()
        for p in [*self.positives, *self.negatives]:
            h.update(str(p.relative_to(self.root)).encode())
            h.update(p.read_bytes())
        return h.hexdigest()

    def load_images(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positives (P,3,s,s), negatives (N,3,s,s), kinds (N,)) resized/centre-cropped to ``size``."""
        pos = torch.stack([_load_resized(p, size) for p in self.positives])
        neg = torch.stack([_load_resized(p, size) for p in self.negatives])
        return pos, neg, torch.tensor(self.kinds, dtype=torch.long)

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        *,
        kinds: Sequence[int] = (0, 1),
        n_neg: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random indices (positives (n,), negatives (n_neg,)), drawn afresh for each step.

        Negatives are drawn from the allowed ``kinds`` in equal shares (so the under/over ratio does not
        depend on how many of each the pool holds); without replacement where the pool allows.
        """
        n_neg = n if n_neg is None else n_neg
        pos_idx = _draw(len(self.positives), n, generator)
        kinds_t = torch.tensor(self.kinds)
        allowed = [k for k in kinds if bool((kinds_t == k).any())]
        if not allowed:
            raise SclleError(f"contrast pool has no negatives of kind {list(kinds)}", self.root)
        parts = []
        for j, k in enumerate(allowed):
            share = n_neg // len(allowed) + (1 if j < n_neg % len(allowed) else 0)
            members = torch.nonzero(kinds_t == k).flatten()
            parts.append(members[_draw(len(members), share, generator)])
        return pos_idx, torch.cat(parts)


def _draw(population: int, n: int, generator: torch.Generator) -> torch.Tensor:
    if n <= population:
        return torch.randperm(population, generator=generator)[:n]
    return torch.randint(population, (n,), generator=generator)

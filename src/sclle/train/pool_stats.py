"""The contrastive pool during a run: its VGG statistics computed once, positives and negatives per step.

:class:`StatsPool` is :class:`sclle.data.contrast.ContrastPool` plus the VGG statistics of its images
(Gram matrices, brightness, grey quantiles from :mod:`sclle.losses.contrastive`), cached on disk; they
live here rather than in data because data sits below the losses.

Rank 0 computes the statistics (or loads them from the cache, keyed on the VGG's fingerprint); the
other ranks then load the cache. Each step's pool indices come from ``(seed, step)`` alone, so a
resumed run and N DDP ranks draw what one uninterrupted process draws.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from tqdm import tqdm

from sclle.core.files import atomic_save
from sclle.data.contrast import ContrastPool
from sclle.data.darken import image_generator
from sclle.losses.contrastive import OVER_EXPOSED, UNDER_EXPOSED, GramInput, PoolStats, compute_pool_stats
from sclle.losses.objective import ObjectiveNeeds
from sclle.train.config import TrainConfig
from sclle.train.distributed import DistContext, barrier

#: Seed offset of the pool-sampling stream (the data streams use seed and seed + 1_000_003).
POOL_SEED_OFFSET = 2_000_029

#: How many times :meth:`StatsPool.stats` actually ran VGG (tests check the cache with it).
STATS_COMPUTE_COUNT = 0


class PoolPair(NamedTuple):
    """VGG statistics of the whole pool: positives and negatives (``kind`` 0 under, 1 over)."""

    positives: PoolStats
    negatives: PoolStats


class StatsPool(ContrastPool):
    """A :class:`~sclle.data.contrast.ContrastPool` that also gives the VGG statistics of its images."""

    def stats(
        self,
        vgg: torch.nn.Module,
        layers: Sequence[str],
        size: int,
        cache_dir: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 16,
        fingerprint: str | None = None,
        progress: bool = False,
        gram_input: GramInput = "rgb",
    ) -> PoolPair:
        """VGG Gram matrices, mean brightness and grey quantiles of every pool image at ``size`` px, computed once.

        The result is cached in ``cache_dir`` under a key made of the VGG weights' fingerprint, the
        pool's content hash, ``size`` and ``layers``; a later call with the same key loads it instead of
        running VGG (a different pool, size, layer set or VGG gives a different file). Tensors are
        returned on ``device`` (default: the VGG's). ``gram_input`` is what the Grams are taken of
        (:func:`~sclle.losses.contrastive.gram_view`); it is part of the key.
        """
        global STATS_COMPUTE_COUNT
        layers = list(layers)
        dev = torch.device(device) if device is not None else next(vgg.parameters()).device
        key_src, cache_file = self._stats_key(
            fingerprint or vgg_fingerprint(vgg), layers, size, cache_dir, gram_input
        )
        if cache_file is not None and cache_file.is_file():
            blob = torch.load(cache_file, map_location="cpu", weights_only=True)
        else:
            STATS_COMPUTE_COUNT += 1
            pos, neg, kinds = self.load_images(size)
            blob = {}
            for name, imgs in (("pos", pos), ("neg", neg)):
                chunks = range(0, len(imgs), batch_size)
                st = PoolStats.cat(
                    [
                        compute_pool_stats(
                            vgg,
                            imgs[i : i + batch_size],
                            layers,
                            batch_size=batch_size,
                            gram_input=gram_input,
                        ).to("cpu", torch.float32)
                        for i in tqdm(chunks, desc=f"pool stats ({name})", disable=not progress)
                    ]
                )
                blob[name] = {"grams": st.grams, "brightness": st.brightness, "quantiles": st.quantiles}
            blob["pos"]["kind"] = torch.full((len(pos),), -1, dtype=torch.long)
            blob["neg"]["kind"] = kinds
            blob["key"] = key_src
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                atomic_save(cache_file, lambda tmp: torch.save(blob, tmp))

        def mk(d: dict) -> PoolStats:
            return PoolStats(
                grams={k: v.to(dev) for k, v in d["grams"].items()},
                brightness=d["brightness"].to(dev),
                kind=d["kind"].to(dev),
                quantiles=d["quantiles"].to(dev),
                gram_input=gram_input,
            )

        return PoolPair(mk(blob["pos"]), mk(blob["neg"]))

    def _stats_key(
        self,
        fingerprint: str,
        layers: Sequence[str],
        size: int,
        cache_dir: str | Path | None,
        gram_input: GramInput = "rgb",
    ) -> tuple[str, Path | None]:
        src = {
            "vgg": fingerprint,
            "pool": self.content_hash(),
            "size": int(size),
            "layers": list(layers),
            "v": 2,  # 2: grey-level quantiles added
        }
        if gram_input != "rgb":  # absent for rgb: caches written before the option stay valid
            src["gram_input"] = gram_input
        key_src = json.dumps(src, sort_keys=True)
        key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
        return key_src, (Path(cache_dir) / f"pool_stats_{key}.pt" if cache_dir is not None else None)

    def stats_cached(
        self,
        fingerprint: str,
        layers: Sequence[str],
        size: int,
        cache_dir: str | Path,
        gram_input: GramInput = "rgb",
    ) -> bool:
        """Whether :meth:`stats` with these arguments would load from the cache (no VGG needed)."""
        return bool(self._stats_key(fingerprint, layers, size, cache_dir, gram_input)[1].is_file())  # type: ignore[union-attr]


def vgg_fingerprint(vgg: torch.nn.Module) -> str:
    """The VGG's own fingerprint if it has one, else a hash of its parameters."""
    fp = getattr(vgg, "fingerprint", None)
    if callable(fp):
        fp = fp()
    if isinstance(fp, str) and fp:
        return fp
    h = hashlib.sha256()
    for name, t in sorted(vgg.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sclle/pool_stats`` (``~/.cache/sclle/pool_stats``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sclle" / "pool_stats"


class RunPool:
    """The pool's statistics for one run and the per-step draw of positives and negatives."""

    def __init__(self, pool: StatsPool, stats: PoolPair, needs: ObjectiveNeeds, cfg: TrainConfig) -> None:
        self.pool = pool
        self.stats = stats
        self.needs = needs
        self.seed = cfg.seed
        self.n_pos = cfg.schedule.n_pos
        self.n_neg = cfg.schedule.n_neg

    @classmethod
    def load(
        cls, cfg: TrainConfig, vgg: nn.Module, needs: ObjectiveNeeds, dd: DistContext, device: torch.device
    ) -> RunPool:
        """Read the pool of ``data.pool`` and its statistics under ``vgg`` (rank 0 first, then the others)."""
        d, layers = cfg.data, cfg.loss.gram_layers
        pool = StatsPool.load(d.pool)
        cache = Path(cfg.logging.cache_dir) if cfg.logging.cache_dir else default_cache_dir()
        size = d.pool_size or cfg.schedule.crop
        fp = vgg_fingerprint(vgg)
        stats: PoolPair | None = None
        gi = cfg.loss.gram_input
        if dd.main:
            stats = pool.stats(
                vgg,
                layers,
                size,
                cache,
                device=device,
                fingerprint=fp,
                progress=cfg.logging.progress,
                gram_input=gi,
            )
        barrier(dd)
        if not dd.main:
            stats = pool.stats(vgg, layers, size, cache, device=device, fingerprint=fp, gram_input=gi)
        assert stats is not None
        return cls(pool, stats, needs, cfg)

    def draw(self, step: int) -> tuple[PoolStats, PoolStats | None]:
        """Positives and the negatives the objective needs (``None`` when it needs none) for ``step``."""
        g = image_generator(self.seed + POOL_SEED_OFFSET, step)
        # positives are drawn first, so they do not depend on the negative kinds
        pi, ni = self.pool.sample(
            self.n_pos, g, kinds=self.needs.negatives or (UNDER_EXPOSED, OVER_EXPOSED), n_neg=self.n_neg
        )
        neg = self.stats.negatives.subset(ni) if self.needs.negatives else None
        return self.stats.positives.subset(pi), neg

"""Contrastive loss of SCL-LLE: pull the enhanced image towards normal-light positives, push it away
from over/under-exposed negatives, in texture (VGG Gram matrices) and in brightness.

Paper (Liang et al., AAAI 2022), for an enhanced image I_H, positive I_P and negative I_N::

    L_c = max(d(G(I_H), G(I_P)) - d(G(I_H), G(I_N)) + alpha, 0)
        + max(d(E(I_H), E(I_P)) - d(E(I_H), E(I_N)) + beta,  0),    alpha = 0.3, beta = 0.04

with G the Gram matrices of VGG-16 layers (summed over the layers) and E the mean brightness.
Positives and negatives are unpaired images from a pool; their statistics do not depend on the
enhancer, so the trainer computes them once (:func:`compute_pool_stats`) and passes
:class:`PoolStats` here. This is why :func:`contrastive_loss` takes Gram matrices, not images.

Several positives/negatives per step (our choice; the paper writes one of each): by default
(``aggregate="mean"``) for every anchor the distance is *averaged* over the positives and,
separately, over the negatives, the hinge is applied per anchor, and the hinges are averaged over
the batch. ``aggregate="pairs"`` applies the hinge to every (positive, negative) pair instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from sclle.models.vgg import VGG16Features

Distance = Literal["mse", "sse", "l1"]
_DISTANCES = ("mse", "sse", "l1")
Aggregate = Literal["mean", "pairs"]
BrightnessStat = Literal["mean", "distribution"]
_BRIGHTNESS_STATS = ("mean", "distribution")
GramInput = Literal["rgb", "grey"]
GRAM_INPUTS = ("rgb", "grey")

#: Quantile levels kept per image for ``brightness_stat="distribution"``.
DEFAULT_QUANTILES = 32

#: PoolStats.kind values.
UNDER_EXPOSED = 0
OVER_EXPOSED = 1


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``G = F F^T / (C H W)`` of (B, C, H, W) features -> (B, C, C).

    The normalisation by C*H*W (as in the released code) makes the value independent of image size,
    so cached pool Grams computed at one resolution compare with anchors at another.
    """
    if features.ndim != 4:
        raise ValueError(f"gram_matrix expects (B, C, H, W) features, got {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def gram_view(images: torch.Tensor, gram_input: GramInput = "rgb") -> torch.Tensor:
    """What VGG sees for the Gram term: the (B, 3, H, W) images, or their grey level in all three channels.

    Why grey: Gram matrices of shallow VGG layers also hold the pool's *colour* statistics, and pulling
    towards them tints the output towards the positives' average colour (measured with
    ``scripts/term_pull.py``: the Gram term alone drives the green-yellow cast of long runs). The grey
    level is the plain mean over RGB, so the term's gradient is the same on R, G and B (a luma weighting
    would push green most).
    """
    if gram_input not in GRAM_INPUTS:
        raise ValueError(f"unknown gram_input {gram_input!r}; known: {', '.join(GRAM_INPUTS)}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"gram_view expects (B, 3, H, W), got {tuple(images.shape)}")
    if gram_input == "rgb":
        return images
    return images.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)


def mean_brightness(image: torch.Tensor) -> torch.Tensor:
    """Mean brightness E(I) of (B, 3, H, W) images: the mean over channels and pixels -> (B,)."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"mean_brightness expects (B, 3, H, W), got {tuple(image.shape)}")
    return image.mean(dim=(1, 2, 3))


def brightness_quantiles(image: torch.Tensor, levels: int = DEFAULT_QUANTILES) -> torch.Tensor:
    """Quantiles of the grey level (mean over RGB) of (B, 3, H, W) images -> (B, levels).

    Levels are the bin centres ``(k + 0.5) / levels``: a compact, size-independent description of the
    brightness *distribution*, differentiable (through the sort) for the enhanced images.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"brightness_quantiles expects (B, 3, H, W), got {tuple(image.shape)}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    grey = image.mean(dim=1).flatten(1)
    q = (torch.arange(levels, device=image.device, dtype=grey.dtype) + 0.5) / levels
    return torch.quantile(grey, q, dim=1).transpose(0, 1).contiguous()


def distribution_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute grey-level difference between random pixels of two images -> (B, N).

    ``a`` (B, K) and ``b`` (N, K) are :func:`brightness_quantiles`; the result is
    ``mean_{i,j} |a_i - b_j|``, i.e. ``E|X - Y|`` for X, Y drawn independently from the two grey-level
    distributions. This is what the released SCL-LLE code measures with a per-pixel L1 between the
    enhanced image and an unrelated positive/negative, without depending on where the pixels are.
    It pulls every pixel towards the bulk of the positives' grey levels, not only the image mean.
    """
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expected (B, K) and (N, K) quantiles, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = a[:, None, :, None] - b.to(a.dtype)[None, :, None, :]  # (B, N, K, K')
    return diff.abs().mean(dim=(2, 3))


def anchor_brightness_stat(image: torch.Tensor, stat: BrightnessStat) -> torch.Tensor:
    """:func:`mean_brightness` (``"mean"``) or :func:`brightness_quantiles` (``"distribution"``)."""
    if stat == "mean":
        return mean_brightness(image)
    if stat == "distribution":
        return brightness_quantiles(image)
    raise ValueError(f"unknown brightness_stat {stat!r}; known: {', '.join(_BRIGHTNESS_STATS)}")


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, distance: Distance = "mse") -> torch.Tensor:
    """Distances between the rows of ``a`` (B, D) and of ``b`` (N, D) -> (B, N).

    ``mse``: mean over D of squared differences; ``sse``: their sum (the released code's
    ``MSELoss(reduction="sum")`` per pair); ``l1``: mean over D of absolute differences.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (B, D) and (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = a.unsqueeze(1) - b.to(a.dtype).unsqueeze(0)  # (B, N, D)
    if distance == "mse":
        return diff.pow(2).mean(dim=2)
    if distance == "sse":
        return diff.pow(2).sum(dim=2)
    if distance == "l1":
        return diff.abs().mean(dim=2)
    raise ValueError(f"unknown distance {distance!r}; known: {', '.join(_DISTANCES)}")


def _gram_distances(
    anchor: Mapping[str, torch.Tensor], pool: Mapping[str, torch.Tensor], distance: Distance
) -> torch.Tensor:
    """Sum over layers of the pairwise Gram distances -> (B, N)."""
    missing = [k for k in anchor if k not in pool]
    if missing:
        raise ValueError(f"pool grams lack layer(s) {missing}; have {sorted(pool)}")
    total = None
    for name, ga in anchor.items():
        gp = pool[name]
        if ga.ndim != 3 or gp.ndim != 3 or ga.shape[1:] != gp.shape[1:]:
            raise ValueError(
                f"layer {name}: anchor grams {tuple(ga.shape)} and pool grams {tuple(gp.shape)} "
                "must be (B, C, C) and (N, C, C)"
            )
        d = pairwise_distance(ga.flatten(1), gp.flatten(1), distance)
        total = d if total is None else total + d
    if total is None:
        raise ValueError("anchor_grams is empty")
    return total


def _hinge(
    d_pos: torch.Tensor, d_neg: torch.Tensor | None, margin: float, aggregate: Aggregate
) -> torch.Tensor:
    """(B, P) and (B, N) distances -> scalar hinge loss (see :func:`contrastive_loss`)."""
    if d_neg is None:
        return d_pos.mean()
    if aggregate == "mean":
        return torch.clamp(d_pos.mean(dim=1) - d_neg.mean(dim=1) + margin, min=0.0).mean()
    if aggregate == "pairs":
        return torch.clamp(d_pos.unsqueeze(2) - d_neg.unsqueeze(1) + margin, min=0.0).mean()
    raise ValueError(f"unknown aggregate {aggregate!r}; known: mean, pairs")


def contrastive_loss(
    anchor_grams: Mapping[str, torch.Tensor],
    pos_grams: Mapping[str, torch.Tensor],
    neg_grams: Mapping[str, torch.Tensor] | None,
    anchor_brightness: torch.Tensor,
    pos_brightness: torch.Tensor,
    neg_brightness: torch.Tensor | None,
    *,
    gram_margin: float = 0.3,
    brightness_margin: float = 0.04,
    distance: Distance = "mse",
    aggregate: Aggregate = "mean",
    brightness_stat: BrightnessStat = "mean",
) -> dict[str, torch.Tensor]:
    """SCL-LLE contrastive loss (module docstring) -> ``{"gram", "brightness", "total"}`` scalars.

    Args:
        anchor_grams: layer -> (B, C, C) Grams of the enhanced images.
        pos_grams / neg_grams: layer -> (P, C, C) / (N, C, C) Grams of positives / negatives.
        anchor_brightness, pos_brightness, neg_brightness: (B,), (P,), (N,) mean brightness.
        gram_margin: alpha, on the Gram term. brightness_margin: beta, on the brightness term.
        distance: ``"mse"`` / ``"sse"`` / ``"l1"`` over the Gram entries (mean of squares, sum of
            squares, mean of absolute values), summed over layers; for the scalar brightness
            ``(E_a - E_p)^2`` (mse and sse) or ``|E_a - E_p|`` (l1).
        aggregate: ``"mean"`` (default): per anchor ``max(mean_p d(a,p) - mean_n d(a,n) + margin, 0)``;
            ``"pairs"``: ``mean_{p,n} max(d(a,p) - d(a,n) + margin, 0)`` (a triplet per pair, so one
            close negative is enough to activate the hinge). Either way the batch mean is returned.

        brightness_stat: ``"mean"`` (paper): the brightness tensors are mean brightness (B,), (P,),
            (N,) compared with ``distance``; ``"distribution"`` (beyond the paper, closer to the
            released code): they are :func:`brightness_quantiles` (B, K), (P, K), (N, K) compared
            with :func:`distribution_distance`.

    With no negatives (``neg_grams``/``neg_brightness`` None or empty) the push term is dropped and
    the loss is the plain pull ``mean_p d(a, p)`` (no margin: a constant would not change gradients).
    """
    if distance not in _DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; known: {', '.join(_DISTANCES)}")
    if brightness_stat not in _BRIGHTNESS_STATS:
        raise ValueError(
            f"unknown brightness_stat {brightness_stat!r}; known: {', '.join(_BRIGHTNESS_STATS)}"
        )
    want = 1 if brightness_stat == "mean" else 2
    if anchor_brightness.ndim != want or pos_brightness.ndim != want:
        shapes = "(B,), (P,), (N,)" if want == 1 else "(B, K), (P, K), (N, K)"
        raise ValueError(f"brightness tensors must be {shapes} for brightness_stat={brightness_stat!r}")
    if pos_brightness.numel() == 0:
        raise ValueError("need at least one positive")
    b = anchor_brightness.shape[0]
    for name, g in anchor_grams.items():
        if g.shape[0] != b:
            raise ValueError(f"anchor grams {name} have batch {g.shape[0]}, brightness has {b}")
    for name, g in pos_grams.items():
        if g.shape[0] != pos_brightness.shape[0]:
            raise ValueError(
                f"positive grams {name}: {g.shape[0]} rows, brightness: {pos_brightness.shape[0]}"
            )
    has_neg = neg_grams is not None and neg_brightness is not None and neg_brightness.numel() > 0
    if has_neg:
        if neg_brightness.ndim != want:
            raise ValueError(f"neg_brightness must have {want} dimension(s)")
        for name, g in neg_grams.items():
            if g.shape[0] != neg_brightness.shape[0]:
                raise ValueError(
                    f"negative grams {name}: {g.shape[0]} rows, brightness: {neg_brightness.shape[0]}"
                )

    def d_bright(pool: torch.Tensor) -> torch.Tensor:
        if brightness_stat == "distribution":
            return distribution_distance(anchor_brightness, pool)
        return pairwise_distance(anchor_brightness.unsqueeze(1), pool.unsqueeze(1), distance)

    d_gram_pos = _gram_distances(anchor_grams, pos_grams, distance)
    d_bright_pos = d_bright(pos_brightness)
    d_gram_neg = d_bright_neg = None
    if has_neg:
        d_gram_neg = _gram_distances(anchor_grams, neg_grams, distance)
        d_bright_neg = d_bright(neg_brightness)
    gram = _hinge(d_gram_pos, d_gram_neg, gram_margin, aggregate)
    bright = _hinge(d_bright_pos, d_bright_neg, brightness_margin, aggregate)
    return {"gram": gram, "brightness": bright, "total": gram + bright}


@dataclass
class PoolStats:
    """Precomputed statistics of a pool of positive or negative images.

    Attributes:
        grams: VGG layer -> (N, C, C) Gram matrices (:func:`gram_matrix`).
        brightness: (N,) mean brightness (:func:`mean_brightness`).
        kind: (N,) long, for negatives: 0 = under-exposed, 1 = over-exposed
            (:data:`UNDER_EXPOSED`, :data:`OVER_EXPOSED`); ``None`` for positives.
        quantiles: (N, K) grey-level quantiles (:func:`brightness_quantiles`), or ``None``.
        gram_input: what the Grams were taken of (:func:`gram_view`); the loss refuses to compare
            them with anchors' Grams of another kind.
    """

    grams: dict[str, torch.Tensor]
    brightness: torch.Tensor
    kind: torch.Tensor | None = field(default=None)
    quantiles: torch.Tensor | None = field(default=None)
    gram_input: GramInput = "rgb"

    def __post_init__(self) -> None:
        if self.brightness.ndim != 1:
            raise ValueError(f"brightness must be (N,), got {tuple(self.brightness.shape)}")
        n = self.brightness.shape[0]
        for name, g in self.grams.items():
            if g.ndim != 3 or g.shape[0] != n or g.shape[1] != g.shape[2]:
                raise ValueError(f"grams[{name!r}] must be ({n}, C, C), got {tuple(g.shape)}")
        if self.kind is not None and tuple(self.kind.shape) != (n,):
            raise ValueError(f"kind must be ({n},), got {tuple(self.kind.shape)}")
        if self.quantiles is not None and (self.quantiles.ndim != 2 or self.quantiles.shape[0] != n):
            raise ValueError(f"quantiles must be ({n}, K), got {tuple(self.quantiles.shape)}")
        if self.gram_input not in GRAM_INPUTS:
            raise ValueError(f"unknown gram_input {self.gram_input!r}; known: {', '.join(GRAM_INPUTS)}")

    def check_gram_input(self, expected: GramInput, what: str = "pool stats") -> None:
        """Raise if these Grams were taken of something else than the anchors' (``expected``)."""
        if self.gram_input != expected:
            raise ValueError(
                f"{what} hold Grams of {self.gram_input!r} images but the anchors' are of {expected!r} "
                "(compute the pool statistics with the same gram_input)"
            )

    def brightness_stat(self, stat: BrightnessStat) -> torch.Tensor:
        """The statistic the contrastive brightness term compares (``"mean"`` or ``"distribution"``)."""
        if stat == "mean":
            return self.brightness
        if self.quantiles is None:
            raise ValueError(
                "these PoolStats carry no quantiles (recompute them, or use brightness_stat='mean')"
            )
        return self.quantiles

    def __len__(self) -> int:
        return int(self.brightness.shape[0])

    def subset(self, idx: torch.Tensor | Sequence[int] | slice) -> PoolStats:
        """The entries selected by ``idx`` (indices, a bool mask or a slice)."""
        if not isinstance(idx, (torch.Tensor, slice)):
            idx = torch.as_tensor(list(idx), dtype=torch.long)
        if isinstance(idx, torch.Tensor):
            idx = idx.to(self.brightness.device)
        return PoolStats(
            grams={k: g[idx] for k, g in self.grams.items()},
            brightness=self.brightness[idx],
            kind=None if self.kind is None else self.kind[idx],
            quantiles=None if self.quantiles is None else self.quantiles[idx],
            gram_input=self.gram_input,
        )

    def of_kind(self, *kinds: int) -> PoolStats:
        """Only the entries whose ``kind`` is one of ``kinds`` (e.g. ``of_kind(OVER_EXPOSED)``)."""
        if self.kind is None:
            raise ValueError("these PoolStats carry no kind (positives?)")
        mask = torch.zeros_like(self.kind, dtype=torch.bool)
        for k in kinds:
            mask |= self.kind == k
        return self.subset(mask)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PoolStats:
        """Move to ``device`` / cast the float tensors to ``dtype`` (``kind`` stays integer)."""
        return PoolStats(
            grams={k: g.to(device=device, dtype=dtype) for k, g in self.grams.items()},
            brightness=self.brightness.to(device=device, dtype=dtype),
            kind=None if self.kind is None else self.kind.to(device=device),
            quantiles=None if self.quantiles is None else self.quantiles.to(device=device, dtype=dtype),
            gram_input=self.gram_input,
        )

    @staticmethod
    def cat(items: Sequence[PoolStats]) -> PoolStats:
        """Concatenate pools (same layers and ``gram_input``; ``kind`` kept only if every item has it)."""
        if not items:
            raise ValueError("nothing to concatenate")
        for it in items[1:]:
            it.check_gram_input(items[0].gram_input, "pools to concatenate")
        layers = list(items[0].grams)
        kinds = [it.kind for it in items]
        qs = [it.quantiles for it in items]
        return PoolStats(
            grams={k: torch.cat([it.grams[k] for it in items]) for k in layers},
            brightness=torch.cat([it.brightness for it in items]),
            kind=None if any(k is None for k in kinds) else torch.cat(kinds),  # type: ignore[arg-type]
            quantiles=None if any(q is None for q in qs) else torch.cat(qs),  # type: ignore[arg-type]
            gram_input=items[0].gram_input,
        )


@torch.no_grad()
def compute_pool_stats(
    vgg: VGG16Features,
    images: torch.Tensor,
    layers: Sequence[str] = ("relu1_2", "relu2_2"),
    *,
    kind: int | torch.Tensor | None = None,
    batch_size: int = 8,
    gram_input: GramInput = "rgb",
) -> PoolStats:
    """Gram matrices and brightness of (N, 3, H, W) pool images in [0, 1], without gradients.

    ``kind`` (0 under / 1 over, scalar or (N,)) is stored for negatives. Batched to bound memory.
    ``gram_input`` is what the Grams are taken of (:func:`gram_view`); the brightness is of the images.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if images.numel() and (float(images.min()) < -1e-3 or float(images.max()) > 1 + 1e-3):
        raise ValueError("pool images must be in [0, 1]")
    missing = [n for n in layers if n not in vgg.layers]
    if missing:
        raise ValueError(f"vgg does not compute {missing}; it has {vgg.layers}")
    device = next(vgg.parameters()).device
    grams: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    bright: list[torch.Tensor] = []
    quant: list[torch.Tensor] = []
    for i in range(0, images.shape[0], max(1, batch_size)):
        x = images[i : i + batch_size].to(device=device, dtype=torch.float32)
        feats = vgg(gram_view(x, gram_input), layers)
        for n in layers:
            grams[n].append(gram_matrix(feats[n]))
        bright.append(mean_brightness(x))
        quant.append(brightness_quantiles(x))
    n_img = images.shape[0]
    kind_t = None
    if kind is not None:
        kind_t = torch.as_tensor(kind, dtype=torch.long, device=device)
        if kind_t.ndim == 0:
            kind_t = kind_t.expand(n_img).clone()
    return PoolStats(
        grams={n: torch.cat(g) for n, g in grams.items()},
        brightness=torch.cat(bright),
        kind=kind_t,
        quantiles=torch.cat(quant) if quant else torch.zeros(0, DEFAULT_QUANTILES, device=device),
        gram_input=gram_input,
    )


class ContrastiveLoss(nn.Module):
    """Module twin of :func:`contrastive_loss` that computes the anchors' Grams with ``vgg``.

    ``forward(enhanced, pos, neg=None, *, anchor_features=None)`` takes the enhanced images
    (B, 3, H, W) in [0, 1] and precomputed :class:`PoolStats`; pass ``anchor_features`` (the dict
    returned by ``vgg(gram_view(enhanced, gram_input))``) to reuse a VGG pass shared with other losses.
    """

    def __init__(
        self,
        vgg: VGG16Features,
        layers: Sequence[str] = ("relu1_2", "relu2_2"),
        *,
        gram_margin: float = 0.3,
        brightness_margin: float = 0.04,
        distance: Distance = "mse",
        aggregate: Aggregate = "mean",
        brightness_stat: BrightnessStat = "mean",
        gram_input: GramInput = "rgb",
    ) -> None:
        super().__init__()
        if gram_input not in GRAM_INPUTS:
            raise ValueError(f"unknown gram_input {gram_input!r}; known: {', '.join(GRAM_INPUTS)}")
        self.gram_input: GramInput = gram_input
        missing = [n for n in layers if n not in vgg.layers]
        if missing:
            raise ValueError(f"vgg does not compute {missing}; it has {vgg.layers}")
        if distance not in _DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; known: {', '.join(_DISTANCES)}")
        self.vgg = vgg
        self.layers = tuple(layers)
        self.gram_margin = gram_margin
        self.brightness_margin = brightness_margin
        self.distance: Distance = distance
        self.aggregate: Aggregate = aggregate
        if brightness_stat not in _BRIGHTNESS_STATS:
            raise ValueError(
                f"unknown brightness_stat {brightness_stat!r}; known: {', '.join(_BRIGHTNESS_STATS)}"
            )
        self.brightness_stat: BrightnessStat = brightness_stat

    def anchor_grams(
        self, enhanced: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        feats = self.vgg(gram_view(enhanced, self.gram_input), self.layers) if features is None else features
        return {n: gram_matrix(feats[n]) for n in self.layers}

    def forward(
        self,
        enhanced: torch.Tensor,
        pos: PoolStats,
        neg: PoolStats | None = None,
        *,
        anchor_features: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        pos.check_gram_input(self.gram_input, "positives")
        if neg is not None:
            neg.check_gram_input(self.gram_input, "negatives")
        grams = self.anchor_grams(enhanced, anchor_features)
        stat = self.brightness_stat
        return contrastive_loss(
            grams,
            pos.grams,
            None if neg is None else neg.grams,
            anchor_brightness_stat(enhanced, stat),
            pos.brightness_stat(stat),
            None if neg is None else neg.brightness_stat(stat),
            gram_margin=self.gram_margin,
            brightness_margin=self.brightness_margin,
            distance=self.distance,
            aggregate=self.aggregate,
            brightness_stat=stat,
        )

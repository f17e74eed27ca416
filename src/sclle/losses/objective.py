"""The full SCL-LLE training objective, with ablation switches.

``total = w_cg * L_c,gram + w_cb * L_c,brightness          (contrastive, positives/negatives)
        + w_sc * L_sc + w_ce * L_ce                        (semantic: brightness consistency, seg. CE)
        + w_fr * L_fr                                      (feature preservation, VGG relu4_3)
        + w_col * L_col + w_tv * L_tv                      (Zero-DCE colour constancy, curve smoothness)
        + w_sc2 * L_scale                                  (scale consistency, beyond the paper, off)``

Default weights are those of the authors' released training script (TV 200, colour 8, contrastive
brightness 10, contrastive Gram 5, semantic brightness 1, CE 1, feature preservation 1); the margins
are the paper's (alpha = 0.3 on the Gram term, beta = 0.04 on the brightness term; the released code
has them swapped). The contrastive defaults are ``distance="sse"`` and ``aggregate="pairs"``
(measured choices, see docs/deviations.md). See docs/deviations.md for every difference from the paper and the code.

Usage (the trainer computes the pool statistics once and caches them, keyed on
``vgg.fingerprint``)::

    from sclle.models.dce import DCENet, apply_curves
    from sclle.models.vgg import VGG16Features
    from sclle.losses.objective import LossConfig, SCLObjective, compute_pool_stats
    from sclle.losses.contrastive import UNDER_EXPOSED, OVER_EXPOSED, PoolStats

    cfg = LossConfig()                                   # paper margins, released weights
    objective = SCLObjective(cfg)                        # builds a frozen VGG-16 (relu1_2, relu2_2, relu4_3)
    gi = cfg.gram_input                                  # "rgb" (paper) or "grey": pool and anchors alike
    pos = compute_pool_stats(objective.vgg, positives, cfg.gram_layers, gram_input=gi)
    neg = PoolStats.cat([compute_pool_stats(objective.vgg, dark, cfg.gram_layers, kind=UNDER_EXPOSED, gram_input=gi),
                         compute_pool_stats(objective.vgg, bright, cfg.gram_layers, kind=OVER_EXPOSED, gram_input=gi)])

    curves = net(low)                                    # (B, 24, H, W)
    enhanced = apply_curves(low, curves)
    seg_logits = segmenter(normalize(enhanced))          # frozen segmenter, graph kept to `enhanced`
    losses = objective(low, enhanced, curves, labels=labels, seg_logits=seg_logits,
                       pos_stats=pos.subset(idx_p), neg_stats=neg.subset(idx_n))
    losses["total"].backward()                           # other keys: weighted terms, for logging

Every enabled term appears in the returned dict *already weighted*; disabled terms (ablation
switch off or weight 0) are absent. Missing inputs for an enabled term raise ``ValueError``
instead of silently training a different objective. Which terms are on is decided in one place,
:meth:`LossConfig.active_terms`; :meth:`SCLObjective.requirements` says what those terms need (pool,
negative kinds, labels, segmenter, second-scale curves, VGG layers), so a trainer builds only that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

from sclle.losses.contrastive import (
    GRAM_INPUTS,
    OVER_EXPOSED,
    UNDER_EXPOSED,
    Aggregate,
    BrightnessStat,
    Distance,
    GramInput,
    PoolStats,
    anchor_brightness_stat,
    compute_pool_stats,
    contrastive_loss,
    gram_matrix,
    gram_view,
)
from sclle.losses.preservation import (
    color_constancy_loss,
    curve_smoothness_loss,
    exposure_control_loss,
    feature_preservation_loss,
    hue_preservation_loss,
    scale_consistency_loss,
    spatial_consistency_loss,
)
from sclle.losses.semantic import segmentation_ce_loss, semantic_brightness_loss
from sclle.models.vgg import VGG16_LAYERS, VGG16Features

__all__ = [
    "LossConfig",
    "LossWeights",
    "ObjectiveNeeds",
    "PoolStats",
    "SCLObjective",
    "compute_pool_stats",
    "UNDER_EXPOSED",
    "OVER_EXPOSED",
]


@dataclass
class LossWeights:
    """Weights of the terms. Defaults: the released SCL-LLE ``train.py`` (see docs/deviations.md)."""

    contrastive_gram: float = 5.0
    contrastive_brightness: float = 10.0
    semantic_brightness: float = 1.0
    segmentation_ce: float = 1.0
    feature_preservation: float = 1.0
    color: float = 8.0
    smoothness: float = 200.0
    #: beyond the paper: curve maps at x1/4 resolution should match full resolution (off by default).
    scale_consistency: float = 0.0
    #: not in SCL-LLE: Zero-DCE's spatial consistency L_spa (local contrast of the input kept; off).
    spatial_consistency: float = 0.0
    #: not in SCL-LLE: Zero-DCE's exposure control L_exp (16x16 patch means towards a level; off).
    exposure: float = 0.0
    #: not in SCL-LLE: the input's colours kept (angle of RGB vectors, ``hue_preservation_loss``; off).
    hue: float = 0.0


@dataclass(frozen=True)
class ObjectiveNeeds:
    """What one objective evaluation needs, derived from the weights and switches.

    A trainer builds only what is needed (no pool, segmenter or second enhancer pass for a term
    that is off) and never re-derives it from the config.
    """

    #: positives from the contrastive pool (``pos_stats``): a contrastive term is on.
    pool: bool
    #: negative kinds (``UNDER_EXPOSED``/``OVER_EXPOSED``) to pass as ``neg_stats``; empty: none.
    negatives: tuple[int, ...]
    #: class labels: a semantic term is on.
    labels: bool
    #: logits of the frozen segmenter on the enhanced image (``seg_logits``): the CE term is on.
    segmenter: bool
    #: curve maps estimated at a smaller scale (``curves_small_up``): scale consistency is on.
    second_scale: bool
    #: VGG layers :meth:`SCLObjective.forward` reads (empty: no VGG pass).
    vgg_layers: tuple[str, ...]


@dataclass
class LossConfig:
    """Everything that defines the objective (weights, margins, layers, ablations)."""

    weights: LossWeights = field(default_factory=LossWeights)
    gram_margin: float = 0.3
    brightness_margin: float = 0.04
    gram_layers: tuple[str, ...] = ("relu1_2", "relu2_2")
    preservation_layer: str = "relu4_3"
    #: Gram distance. "sse" (sum of squared Gram differences, as the released code) rather than the
    #: function default "mse": with "mse" Gram distances are ~1e-5..1e-4, so alpha = 0.3 keeps the
    #: hinge always active and the term inert (measured; docs/deviations.md).
    distance: Distance = "sse"
    #: "pairs": hinge per (positive, negative) pair. With "mean", averaging over under- *and*
    #: over-exposed negatives made the brightness hinge inactive even for very dark outputs (measured).
    aggregate: Aggregate = "pairs"
    #: What the contrastive brightness term compares. "mean" (paper): mean brightness.
    #: "distribution" (beyond the paper, like the released code's per-pixel L1 against unrelated
    #: positives): E|X - Y| between grey levels of the enhanced image and of a pool image, from
    #: 32 quantiles. It constrains mid-tones and highlights, not only the mean (docs/training.md).
    brightness_stat: BrightnessStat = "mean"
    #: What the Gram term compares. "rgb" (paper): VGG features of the colour images. "grey" (beyond the
    #: paper): of their grey level, so the term judges texture and exposure but not colour; with "rgb"
    #: it pulls the output towards the positives' average colour (the cast of long runs,
    #: scripts/term_pull.py; docs/deviations.md).
    gram_input: GramInput = "rgb"
    #: Target grey level and patch size of the exposure-control term (Zero-DCE: 0.6, 16 px).
    exposure_level: float = 0.6
    exposure_patch: int = 16
    ignore_index: int = 255
    use_contrastive: bool = True
    use_semantic: bool = True
    use_preservation: bool = True
    use_negatives: bool = True
    use_under_negatives: bool = True
    use_over_negatives: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.weights, Mapping):
            self.weights = _from_mapping(LossWeights, self.weights)
        self.gram_layers = tuple(self.gram_layers)
        unknown = [n for n in (*self.gram_layers, self.preservation_layer) if n not in VGG16_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG-16 layer(s) {unknown}; known: {', '.join(VGG16_LAYERS)}")
        if not self.gram_layers:
            raise ValueError("gram_layers must name at least one layer")
        if self.distance not in ("mse", "sse", "l1"):
            raise ValueError(f"unknown distance {self.distance!r}; known: mse, sse, l1")
        if self.aggregate not in ("mean", "pairs"):
            raise ValueError(f"unknown aggregate {self.aggregate!r}; known: mean, pairs")
        if self.gram_input not in GRAM_INPUTS:
            raise ValueError(f"unknown gram_input {self.gram_input!r}; known: rgb, grey")
        if self.brightness_stat not in ("mean", "distribution"):
            raise ValueError(f"unknown brightness_stat {self.brightness_stat!r}; known: mean, distribution")
        if not 0.0 < self.exposure_level < 1.0 or self.exposure_patch < 1:
            raise ValueError(
                f"exposure_level must be in (0, 1) and exposure_patch >= 1, "
                f"got {self.exposure_level}, {self.exposure_patch}"
            )

    @property
    def vgg_layers(self) -> tuple[str, ...]:
        """The VGG layers the objective's extractor computes (Gram layers + preservation layer)."""
        return tuple(dict.fromkeys((*self.gram_layers, self.preservation_layer)))

    def active_terms(self) -> tuple[str, ...]:
        """The terms switched on (weight != 0 and ablation switch on), named as in the loss dict.

        The one place that decides which terms are on: :meth:`SCLObjective.forward` computes exactly
        these and :meth:`requirements` derives from them what a trainer must provide.
        """
        w = self.weights
        switches = {
            "contrastive_gram": self.use_contrastive,
            "contrastive_brightness": self.use_contrastive,
            "semantic_brightness": self.use_semantic,
            "segmentation_ce": self.use_semantic,
            "feature_preservation": self.use_preservation,
        }
        return tuple(f.name for f in fields(w) if getattr(w, f.name) != 0.0 and switches.get(f.name, True))

    def negative_kinds(self) -> tuple[int, ...]:
        """Kinds of negatives the ablation switches keep (empty: the contrastive terms only pull)."""
        if not self.use_negatives:
            return ()
        return tuple(
            k
            for k, on in ((UNDER_EXPOSED, self.use_under_negatives), (OVER_EXPOSED, self.use_over_negatives))
            if on
        )

    def requirements(self) -> ObjectiveNeeds:
        """What the active terms need as inputs (see :class:`ObjectiveNeeds`)."""
        on = set(self.active_terms())
        pool = bool(on & {"contrastive_gram", "contrastive_brightness"})
        layers = self.gram_layers if pool else ()
        if "feature_preservation" in on:
            layers = (*layers, self.preservation_layer)
        return ObjectiveNeeds(
            pool=pool,
            negatives=self.negative_kinds() if pool else (),
            labels=bool(on & {"semantic_brightness", "segmentation_ce"}),
            segmenter="segmentation_ce" in on,
            second_scale="scale_consistency" in on,
            vgg_layers=tuple(dict.fromkeys(layers)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly; tuples become lists)."""
        d = asdict(self)
        d["gram_layers"] = list(self.gram_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` listing the known ones."""
        return _from_mapping(cls, d)


def _from_mapping(cls, d: Mapping[str, Any]):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known: {', '.join(sorted(known))}")
    return cls(**dict(d))


class SCLObjective(nn.Module):
    """SCL-LLE objective (module docstring). Holds a frozen :class:`VGG16Features`.

    Args:
        config: :class:`LossConfig`; default = paper margins, released weights.
        vgg: an existing :class:`VGG16Features` computing at least ``config.vgg_layers``
            (built from ``vgg_weights`` if omitted).
        vgg_weights: explicit VGG-16 weights file for the built extractor.
    """

    def __init__(
        self,
        config: LossConfig | None = None,
        *,
        vgg: VGG16Features | None = None,
        vgg_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else LossConfig()
        needed = self.config.vgg_layers
        if vgg is None:
            vgg = VGG16Features(needed, weights=vgg_weights)
        missing = [n for n in needed if n not in vgg.layers]
        if missing:
            raise ValueError(f"vgg does not compute {missing}; it has {vgg.layers}")
        self.vgg = vgg

    def requirements(self) -> ObjectiveNeeds:
        """What :meth:`forward` needs for this config (pool, negative kinds, segmenter, second scale)."""
        return self.config.requirements()

    def select_negatives(self, neg: PoolStats | None) -> PoolStats | None:
        """Negatives after the ablation switches (``None`` = contrastive term without push)."""
        cfg = self.config
        kinds = cfg.negative_kinds()
        if neg is None or not kinds:
            return None
        if cfg.use_under_negatives and cfg.use_over_negatives:
            return neg
        if neg.kind is None:
            raise ValueError("neg_stats.kind is needed to drop under- or over-exposed negatives")
        return neg.of_kind(*kinds)

    def forward(
        self,
        low: torch.Tensor,
        enhanced: torch.Tensor,
        curve_maps: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        seg_logits: torch.Tensor | None = None,
        pos_stats: PoolStats | None = None,
        neg_stats: PoolStats | None = None,
        curves_small_up: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Weighted terms and ``"total"``.

        Args:
            low: (B, 3, H, W) low-light input in [0, 1].
            enhanced: (B, 3, H, W) enhancer output (with its graph).
            curve_maps: (B, 24, H, W) the curve maps that produced ``enhanced``.
            labels: (B, H, W) class ids for the semantic terms (``ignore_index`` = void).
            seg_logits: (B, K, h, w) logits of the frozen segmenter run on ``enhanced``.
            pos_stats / neg_stats: :class:`PoolStats` of the positives / negatives for this step.
            curves_small_up: curve maps from :func:`~sclle.losses.preservation.estimate_curves_at_scale`.
        """
        cfg, w = self.config, self.config.weights
        if low.shape != enhanced.shape or low.ndim != 4 or low.shape[1] != 3:
            raise ValueError(
                f"low {tuple(low.shape)} and enhanced {tuple(enhanced.shape)} must be equal (B, 3, H, W)"
            )
        if (
            curve_maps.ndim != 4
            or curve_maps.shape[0] != low.shape[0]
            or curve_maps.shape[-2:] != low.shape[-2:]
        ):
            raise ValueError(f"curve_maps {tuple(curve_maps.shape)} do not match images {tuple(low.shape)}")

        out: dict[str, torch.Tensor] = {}
        on = set(cfg.active_terms())
        needs = cfg.requirements()
        # with grey Grams the colour pass needs only the preservation layer (the Grams get their own pass)
        rgb_layers = needs.vgg_layers
        if cfg.gram_input != "rgb":
            rgb_layers = (cfg.preservation_layer,) if "feature_preservation" in on else ()
        feats = self.vgg(enhanced, rgb_layers) if rgb_layers else None

        if needs.pool:
            if pos_stats is None:
                raise ValueError(
                    "pos_stats are required by the contrastive loss (or set use_contrastive=False)"
                )
            if needs.negatives and neg_stats is None:
                raise ValueError("neg_stats are required (or set use_negatives=False)")
            pos_stats.check_gram_input(cfg.gram_input, "positives")
            if neg_stats is not None:
                neg_stats.check_gram_input(cfg.gram_input, "negatives")
            neg = self.select_negatives(neg_stats)
            gram_feats = (
                feats if cfg.gram_input == "rgb" else self.vgg(gram_view(enhanced, "grey"), cfg.gram_layers)
            )
            assert gram_feats is not None
            c = contrastive_loss(
                {n: gram_matrix(gram_feats[n]) for n in cfg.gram_layers},
                pos_stats.grams,
                None if neg is None else neg.grams,
                anchor_brightness_stat(enhanced, cfg.brightness_stat),
                pos_stats.brightness_stat(cfg.brightness_stat),
                None if neg is None else neg.brightness_stat(cfg.brightness_stat),
                gram_margin=cfg.gram_margin,
                brightness_margin=cfg.brightness_margin,
                distance=cfg.distance,
                aggregate=cfg.aggregate,
                brightness_stat=cfg.brightness_stat,
            )
            if "contrastive_gram" in on:
                out["contrastive_gram"] = w.contrastive_gram * c["gram"]
            if "contrastive_brightness" in on:
                out["contrastive_brightness"] = w.contrastive_brightness * c["brightness"]

        if "semantic_brightness" in on:
            if labels is None:
                raise ValueError("labels are required by the semantic loss (or set use_semantic=False)")
            out["semantic_brightness"] = w.semantic_brightness * semantic_brightness_loss(
                enhanced, labels, ignore_index=cfg.ignore_index
            )
        if needs.segmenter:
            if labels is None or seg_logits is None:
                raise ValueError(
                    "labels and seg_logits are required by the segmentation loss "
                    "(or set weights.segmentation_ce=0 / use_semantic=False)"
                )
            out["segmentation_ce"] = w.segmentation_ce * segmentation_ce_loss(
                seg_logits, labels, ignore_index=cfg.ignore_index
            )

        if "feature_preservation" in on:
            assert feats is not None
            with torch.no_grad():
                f_in = self.vgg(low, (cfg.preservation_layer,))[cfg.preservation_layer]
            out["feature_preservation"] = w.feature_preservation * feature_preservation_loss(
                f_in, feats[cfg.preservation_layer]
            )
        if "color" in on:
            out["color"] = w.color * color_constancy_loss(enhanced)
        if "smoothness" in on:
            out["smoothness"] = w.smoothness * curve_smoothness_loss(curve_maps)
        if "hue" in on:
            out["hue"] = w.hue * hue_preservation_loss(low, enhanced)
        if "spatial_consistency" in on:
            out["spatial_consistency"] = w.spatial_consistency * spatial_consistency_loss(low, enhanced)
        if "exposure" in on:
            out["exposure"] = w.exposure * exposure_control_loss(
                enhanced, cfg.exposure_level, cfg.exposure_patch
            )
        if needs.second_scale:
            if curves_small_up is None:
                raise ValueError("curves_small_up is required when weights.scale_consistency > 0")
            out["scale_consistency"] = w.scale_consistency * scale_consistency_loss(
                curve_maps, curves_small_up
            )

        if out:
            total = torch.stack([v.to(enhanced.dtype) for v in out.values()]).sum()
        else:
            total = enhanced.sum() * 0.0
        out["total"] = total
        return out

"""Tests of sclle.losses.objective: gradients reach the enhancer (not VGG), ablations, config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sclle.losses.contrastive import (
    OVER_EXPOSED,
    UNDER_EXPOSED,
    PoolStats,
    compute_pool_stats,
    contrastive_loss,
    gram_matrix,
    mean_brightness,
)
from sclle.losses.objective import LossConfig, LossWeights, SCLObjective
from sclle.losses.preservation import estimate_curves_at_scale
from sclle.models.dce import DCENet, apply_curves
from sclle.models.vgg import VGG16Features

SIZE = 32


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features(("relu1_2", "relu2_2", "relu4_3"), pretrained=False)


@pytest.fixture(scope="module")
def pools(vgg):
    g = torch.Generator().manual_seed(0)
    pos = compute_pool_stats(
        vgg, 0.3 + 0.4 * torch.rand(3, 3, SIZE, SIZE, generator=g), ("relu1_2", "relu2_2")
    )
    under = compute_pool_stats(
        vgg, 0.1 * torch.rand(2, 3, SIZE, SIZE, generator=g), ("relu1_2", "relu2_2"), kind=UNDER_EXPOSED
    )
    over = compute_pool_stats(
        vgg, 0.9 + 0.1 * torch.rand(2, 3, SIZE, SIZE, generator=g), ("relu1_2", "relu2_2"), kind=OVER_EXPOSED
    )
    return pos, PoolStats.cat([under, over])


def _step(vgg, pools, config, *, with_seg=True):
    torch.manual_seed(0)
    net = DCENet()
    seg = nn.Conv2d(3, 4, 3, padding=1).requires_grad_(False)
    low = 0.2 * torch.rand(2, 3, SIZE, SIZE)
    curves = net(low)
    enhanced = apply_curves(low, curves)
    labels = torch.randint(0, 4, (2, SIZE, SIZE))
    labels[:, :4] = 255
    objective = SCLObjective(config, vgg=vgg)
    out = objective(
        low,
        enhanced,
        curves,
        labels=labels,
        seg_logits=seg(enhanced) if with_seg else None,
        pos_stats=pools[0],
        neg_stats=pools[1],
        curves_small_up=estimate_curves_at_scale(net, low, 0.25),
    )
    return net, seg, out


def test_gradients_reach_enhancer_not_vgg_or_segmenter(vgg, pools):
    cfg = LossConfig(weights=LossWeights(scale_consistency=1.0))
    net, seg, out = _step(vgg, pools, cfg)
    expected = {
        "contrastive_gram",
        "contrastive_brightness",
        "semantic_brightness",
        "segmentation_ce",
        "feature_preservation",
        "color",
        "smoothness",
        "scale_consistency",
        "total",
    }
    assert set(out) == expected
    total = sum(v for k, v in out.items() if k != "total")
    torch.testing.assert_close(out["total"], total)
    out["total"].backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in vgg.parameters())
    assert all(p.grad is None for p in seg.parameters())


@pytest.mark.parametrize(
    "term",
    [
        "contrastive_gram",
        "contrastive_brightness",
        "segmentation_ce",
        "feature_preservation",
        "semantic_brightness",
    ],
)
def test_each_paper_term_alone_trains_the_enhancer(vgg, pools, term):
    zero = {f: 0.0 for f in LossWeights.__dataclass_fields__}
    zero[term] = 1.0
    cfg = LossConfig(weights=LossWeights(**zero), gram_margin=100.0, brightness_margin=100.0)
    net, _, out = _step(vgg, pools, cfg)
    assert set(out) == {term, "total"}
    out["total"].backward()
    assert sum(float(p.grad.abs().sum()) for p in net.parameters() if p.grad is not None) > 0


def test_ablation_switches(vgg, pools):
    _, _, out = _step(
        vgg, pools, LossConfig(use_contrastive=False, use_semantic=False, use_preservation=False)
    )
    assert set(out) == {"color", "smoothness", "total"}


def test_negative_kind_switches_match_manual_subset(vgg, pools):
    pos, neg = pools
    torch.manual_seed(1)
    enhanced = torch.rand(2, 3, SIZE, SIZE)
    cfg = LossConfig(use_under_negatives=False, use_semantic=False, use_preservation=False)
    objective = SCLObjective(cfg, vgg=vgg)
    assert len(objective.select_negatives(neg)) == 2
    assert objective.select_negatives(neg).kind.tolist() == [OVER_EXPOSED, OVER_EXPOSED]
    out = objective(enhanced, enhanced, torch.zeros(2, 24, SIZE, SIZE), pos_stats=pos, neg_stats=neg)
    feats = vgg(enhanced)
    over = neg.of_kind(OVER_EXPOSED)
    manual = contrastive_loss(
        {n: gram_matrix(feats[n]) for n in cfg.gram_layers},
        pos.grams,
        over.grams,
        mean_brightness(enhanced),
        pos.brightness,
        over.brightness,
        distance=cfg.distance,
        aggregate=cfg.aggregate,
    )
    torch.testing.assert_close(out["contrastive_gram"], cfg.weights.contrastive_gram * manual["gram"])
    torch.testing.assert_close(
        out["contrastive_brightness"], cfg.weights.contrastive_brightness * manual["brightness"]
    )
    no_neg = SCLObjective(LossConfig(use_negatives=False), vgg=vgg)
    assert no_neg.select_negatives(neg) is None


def test_missing_inputs_raise(vgg, pools):
    with pytest.raises(ValueError, match="seg_logits"):
        _step(vgg, pools, LossConfig(), with_seg=False)
    objective = SCLObjective(LossConfig(use_semantic=False), vgg=vgg)
    x = torch.rand(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="pos_stats"):
        objective(x, x, torch.zeros(1, 24, SIZE, SIZE))


def test_config_round_trip_and_unknown_keys():
    cfg = LossConfig(weights=LossWeights(color=3.0), gram_layers=("relu1_2",), use_over_negatives=False)
    again = LossConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match="known"):
        LossConfig.from_dict({"wieghts": {}})
    with pytest.raises(ValueError, match="known"):
        LossConfig.from_dict({"weights": {"colour": 1.0}})
    with pytest.raises(ValueError, match="unknown VGG-16 layer"):
        LossConfig(gram_layers=("relu6_1",))
    assert LossConfig().gram_margin == 0.3 and LossConfig().brightness_margin == 0.04
    assert LossConfig().weights.scale_consistency == 0.0


def test_distribution_brightness_statistic_trains_the_enhancer(vgg, pools):
    cfg = LossConfig(
        weights=LossWeights(
            contrastive_gram=0.0,
            semantic_brightness=0.0,
            segmentation_ce=0.0,
            feature_preservation=0.0,
            color=0.0,
            smoothness=0.0,
        ),
        brightness_stat="distribution",
    )
    net, _, out = _step(vgg, pools, cfg, with_seg=False)
    assert set(out) == {"contrastive_brightness", "total"}
    assert out["total"].item() > 0
    out["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # it is a different statistic from the paper's mean: the values differ on the same step
    _, _, ref = _step(vgg, pools, LossConfig(weights=cfg.weights))
    assert ref["contrastive_brightness"].item() != pytest.approx(out["contrastive_brightness"].item())
    with pytest.raises(ValueError, match="brightness_stat"):
        LossConfig(brightness_stat="median")  # type: ignore[arg-type]


def test_exposure_weight_adds_the_term(vgg, pools):
    off = _step(vgg, pools, LossConfig())[2]
    assert "exposure" not in off  # not part of SCL-LLE: off by default
    cfg = LossConfig(weights=LossWeights(exposure=10.0), exposure_level=0.5, exposure_patch=8)
    _, _, on = _step(vgg, pools, cfg)
    assert on["exposure"].item() > 0
    assert on["total"].item() == pytest.approx(off["total"].item() + on["exposure"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="exposure_level"):
        LossConfig(exposure_level=0.0)


def test_spatial_consistency_weight_adds_the_term(vgg, pools):
    off = _step(vgg, pools, LossConfig())[2]
    assert "spatial_consistency" not in off  # not part of SCL-LLE: off by default
    net, _, on = _step(vgg, pools, LossConfig(weights=LossWeights(spatial_consistency=100.0)))
    assert on["spatial_consistency"].item() > 0
    assert on["total"].item() == pytest.approx(
        off["total"].item() + on["spatial_consistency"].item(), rel=1e-5
    )


_DEFAULT_NEEDS = {
    "pool": True,
    "negatives": (UNDER_EXPOSED, OVER_EXPOSED),
    "labels": True,
    "segmenter": True,
    "second_scale": False,
    "vgg_layers": ("relu1_2", "relu2_2", "relu4_3"),
}


def _needs_changed(**weights) -> dict[str, object]:
    """The requirements that differ from the default config's when ``weights`` are set."""
    needs = LossConfig(weights=LossWeights(**weights)).requirements()
    return {k: getattr(needs, k) for k, v in _DEFAULT_NEEDS.items() if getattr(needs, k) != v}


def test_default_requirements():
    needs = LossConfig().requirements()
    assert {k: getattr(needs, k) for k in _DEFAULT_NEEDS} == _DEFAULT_NEEDS


@pytest.mark.parametrize(
    ("weights", "changed"),
    [
        # one weight of a pair off: the other term still needs the same inputs
        ({"contrastive_gram": 0}, {}),
        ({"contrastive_brightness": 0}, {}),
        (
            {"contrastive_gram": 0, "contrastive_brightness": 0},
            {"pool": False, "negatives": (), "vgg_layers": ("relu4_3",)},
        ),
        ({"segmentation_ce": 0}, {"segmenter": False}),
        ({"semantic_brightness": 0}, {}),
        ({"semantic_brightness": 0, "segmentation_ce": 0}, {"labels": False, "segmenter": False}),
        ({"feature_preservation": 0}, {"vgg_layers": ("relu1_2", "relu2_2")}),
        ({"scale_consistency": 1.0}, {"second_scale": True}),
        ({"color": 0}, {}),
        ({"smoothness": 0}, {}),
        ({"spatial_consistency": 1.0}, {}),
        ({"exposure": 1.0}, {}),
    ],
)
def test_each_weight_changes_exactly_its_requirement(weights, changed):
    assert _needs_changed(**weights) == changed


@pytest.mark.parametrize(
    ("switches", "changed"),
    [
        ({"use_contrastive": False}, {"pool": False, "negatives": (), "vgg_layers": ("relu4_3",)}),
        ({"use_negatives": False}, {"negatives": ()}),
        ({"use_under_negatives": False}, {"negatives": (OVER_EXPOSED,)}),
        ({"use_over_negatives": False}, {"negatives": (UNDER_EXPOSED,)}),
        ({"use_semantic": False}, {"labels": False, "segmenter": False}),
        ({"use_preservation": False}, {"vgg_layers": ("relu1_2", "relu2_2")}),
    ],
)
def test_each_switch_changes_exactly_its_requirement(switches, changed):
    needs = LossConfig(**switches).requirements()
    assert {k: getattr(needs, k) for k, v in _DEFAULT_NEEDS.items() if getattr(needs, k) != v} == changed


def test_nothing_on_needs_nothing():
    zero = {f: 0.0 for f in ("contrastive_gram", "contrastive_brightness", "semantic_brightness")}
    zero |= {"segmentation_ce": 0.0, "feature_preservation": 0.0}
    needs = LossConfig(weights=LossWeights(**zero)).requirements()
    assert not (needs.pool or needs.negatives or needs.labels or needs.segmenter or needs.second_scale)
    assert needs.vgg_layers == ()


@pytest.mark.parametrize(
    "config",
    [
        LossConfig(),
        LossConfig(weights=LossWeights(segmentation_ce=0, scale_consistency=1.0)),
        LossConfig(weights=LossWeights(contrastive_gram=0, contrastive_brightness=0), use_semantic=False),
        LossConfig(use_under_negatives=False, use_over_negatives=False, use_preservation=False),
    ],
)
def test_forward_runs_on_exactly_what_requirements_ask_for(vgg, pools, config):
    """Inputs the requirements leave out are not needed; the returned terms are the active ones."""
    needs = SCLObjective(config, vgg=vgg).requirements()
    torch.manual_seed(0)
    net = DCENet()
    low = 0.2 * torch.rand(2, 3, SIZE, SIZE)
    curves = net(low)
    enhanced = apply_curves(low, curves)
    pos, neg = pools
    out = SCLObjective(config, vgg=vgg)(
        low,
        enhanced,
        curves,
        labels=torch.randint(0, 4, (2, SIZE, SIZE)) if needs.labels else None,
        seg_logits=torch.randn(2, 4, SIZE, SIZE) if needs.segmenter else None,
        pos_stats=pos if needs.pool else None,
        neg_stats=neg.of_kind(*needs.negatives) if needs.negatives else None,
        curves_small_up=estimate_curves_at_scale(net, low, 0.25) if needs.second_scale else None,
    )
    assert set(out) - {"total"} == set(config.active_terms())
    assert torch.isfinite(out["total"])


@pytest.fixture(scope="module")
def grey_pools(vgg):
    g = torch.Generator().manual_seed(1)
    layers = ("relu1_2", "relu2_2")
    pos = compute_pool_stats(
        vgg, 0.3 + 0.4 * torch.rand(3, 3, SIZE, SIZE, generator=g), layers, gram_input="grey"
    )
    under = compute_pool_stats(
        vgg, 0.1 * torch.rand(2, 3, SIZE, SIZE, generator=g), layers, kind=UNDER_EXPOSED, gram_input="grey"
    )
    return pos, under


def _gram_term(vgg, pools, gram_input, enhanced):
    cfg = LossConfig(
        weights=LossWeights(**{f: 0.0 for f in LossWeights.__dataclass_fields__} | {"contrastive_gram": 1.0}),
        gram_input=gram_input,
    )
    low = torch.full_like(enhanced, 0.1)
    curves = torch.zeros(enhanced.shape[0], 24, *enhanced.shape[-2:])
    return SCLObjective(cfg, vgg=vgg)(low, enhanced, curves, pos_stats=pools[0], neg_stats=pools[1])


def test_grey_gram_term_ignores_colour_and_pushes_channels_alike(vgg, pools, grey_pools):
    torch.manual_seed(0)
    img = 0.2 + 0.6 * torch.rand(1, 3, SIZE, SIZE)
    tint = torch.tensor([0.1, -0.1, 0.0]).view(1, 3, 1, 1)  # a colour shift that keeps the grey level
    grey = {
        k: _gram_term(vgg, grey_pools, "grey", x)["contrastive_gram"]
        for k, x in (("a", img), ("b", img + tint))
    }
    torch.testing.assert_close(grey["a"], grey["b"])
    rgb = {
        k: _gram_term(vgg, pools, "rgb", x)["contrastive_gram"] for k, x in (("a", img), ("b", img + tint))
    }
    assert not torch.allclose(rgb["a"], rgb["b"])  # the paper's colour Grams do see the tint

    x = img.clone().requires_grad_(True)
    out = _gram_term(vgg, grey_pools, "grey", x)
    assert set(out) == {"contrastive_gram", "total"} and out["total"] > 0
    out["total"].backward()
    assert x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad[:, 0], x.grad[:, 1])
    torch.testing.assert_close(x.grad[:, 0], x.grad[:, 2])


def test_grey_gram_config_is_validated_and_round_trips():
    cfg = LossConfig(gram_input="grey")
    assert LossConfig.from_dict(cfg.to_dict()).gram_input == "grey"
    with pytest.raises(ValueError, match="gram_input"):
        LossConfig(gram_input="luma")


def test_pool_stats_of_other_grams_are_refused(vgg, pools, grey_pools):
    """Colour pool Grams against grey anchors (or the reverse) would train a meaningless term: refused."""
    torch.manual_seed(0)
    img = 0.2 + 0.6 * torch.rand(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="Grams of 'rgb' images but the anchors' are of 'grey'"):
        _gram_term(vgg, pools, "grey", img)
    with pytest.raises(ValueError, match="Grams of 'grey'"):
        _gram_term(vgg, grey_pools, "rgb", img)
    with pytest.raises(ValueError, match="pools to concatenate"):
        PoolStats.cat([pools[0], grey_pools[0]])
    assert (
        pools[0].subset([0]).gram_input == "rgb" and grey_pools[0].subset([0]).to("cpu").gram_input == "grey"
    )

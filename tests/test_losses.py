"""Hand-computed checks of every SCL-LLE loss on tiny tensors, plus gradchecks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sclle.losses.contrastive import (
    OVER_EXPOSED,
    UNDER_EXPOSED,
    PoolStats,
    brightness_quantiles,
    compute_pool_stats,
    contrastive_loss,
    distribution_distance,
    gram_matrix,
    gram_view,
    mean_brightness,
    pairwise_distance,
)
from sclle.losses.preservation import (
    ExposureControlLoss,
    HuePreservationLoss,
    color_constancy_loss,
    curve_smoothness_loss,
    estimate_curves_at_scale,
    exposure_control_loss,
    feature_preservation_loss,
    hue_preservation_loss,
    scale_consistency_loss,
    spatial_consistency_loss,
)
from sclle.losses.semantic import segmentation_ce_loss, semantic_brightness_loss


def t(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


# ------------------------------------------------------------------ contrastive building blocks


def test_gram_matrix_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, H=1, W=2)
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by C*H*W = 4
    expected = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])
    torch.testing.assert_close(gram_matrix(f), expected)
    with pytest.raises(ValueError):
        gram_matrix(torch.zeros(2, 3, 4))


def test_mean_brightness_by_hand():
    x = torch.tensor([[[[0.0, 1.0]], [[0.5, 0.5]], [[1.0, 0.0]]], [[[0.2, 0.2]], [[0.2, 0.2]], [[0.2, 0.8]]]])
    torch.testing.assert_close(mean_brightness(x), t(0.5, 0.3))


def test_pairwise_distances_by_hand():
    a = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    b = torch.tensor([[3.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(pairwise_distance(a, b, "mse"), torch.tensor([[1.0, 0.0]]))  # 4/4
    torch.testing.assert_close(pairwise_distance(a, b, "sse"), torch.tensor([[4.0, 0.0]]))
    torch.testing.assert_close(pairwise_distance(a, b, "l1"), torch.tensor([[0.5, 0.0]]))  # 2/4


def _scalar_grams(*values):
    """1x1 Gram matrices holding the given values, as a one-layer dict."""
    return {"l": torch.tensor(values).view(-1, 1, 1)}


def test_contrastive_hinge_inactive_and_active_by_hand():
    anchor, pos = _scalar_grams(2.0), _scalar_grams(1.0, 3.0)  # mse to each positive: 1 -> mean 1
    ea, ep = t(0.5), t(0.45, 0.55)  # (0.05)^2 each -> mean 0.0025

    # Far negatives: gram 1 - 16 + 0.3 < 0 and brightness 0.0025 - 0.2025 + 0.04 < 0: both inactive.
    r = contrastive_loss(anchor, pos, _scalar_grams(6.0), ea, ep, t(0.05))
    assert r["gram"].item() == 0.0 and r["brightness"].item() == 0.0 and r["total"].item() == 0.0

    # Close negatives: gram 1 - 0.25 + 0.3 = 1.05; brightness 0.0025 - 0.0004 + 0.04 = 0.0421.
    r = contrastive_loss(anchor, pos, _scalar_grams(2.5), ea, ep, t(0.52))
    assert r["gram"].item() == pytest.approx(1.05, abs=1e-6)
    assert r["brightness"].item() == pytest.approx(0.0421, abs=1e-6)
    assert r["total"].item() == pytest.approx(1.0921, abs=1e-6)

    # Margins are the paper's by default (alpha=0.3 on Gram, beta=0.04 on brightness) and configurable.
    r = contrastive_loss(
        anchor, pos, _scalar_grams(2.5), ea, ep, t(0.52), gram_margin=0.0, brightness_margin=0.0
    )
    assert r["gram"].item() == pytest.approx(0.75, abs=1e-6)
    assert r["brightness"].item() == pytest.approx(0.0021, abs=1e-6)


def test_contrastive_several_negatives_averaged_per_anchor_then_batch_mean():
    # Two anchors (gram 2 and 10), one positive (gram 2), negatives gram 1 and 5 (l1 distance).
    anchor, pos, neg = _scalar_grams(2.0, 10.0), _scalar_grams(2.0), _scalar_grams(1.0, 5.0)
    ea, ep, en = t(0.5, 0.5), t(0.5), t(0.1, 0.9)
    r = contrastive_loss(anchor, pos, neg, ea, ep, en, distance="l1", gram_margin=0.3)
    # anchor 0: d_pos 0, d_neg mean(1, 3) = 2 -> max(0 - 2 + 0.3, 0) = 0
    # anchor 1: d_pos 8, d_neg mean(9, 5) = 7 -> max(8 - 7 + 0.3, 0) = 1.3 ; batch mean 0.65
    assert r["gram"].item() == pytest.approx(0.65, abs=1e-6)
    # brightness: d_pos 0, d_neg mean(0.4, 0.4) -> inactive for both anchors
    assert r["brightness"].item() == 0.0
    # "pairs": anchor 1 -> mean(max(8-9+0.3,0), max(8-5+0.3,0)) = mean(0, 3.3) = 1.65; batch 0.825
    r = contrastive_loss(anchor, pos, neg, ea, ep, en, distance="l1", aggregate="pairs")
    assert r["gram"].item() == pytest.approx(0.825, abs=1e-6)


def test_contrastive_layers_are_summed_and_matrix_entries_averaged():
    anchor = {"a": torch.eye(2).unsqueeze(0), "b": torch.zeros(1, 1, 1)}
    pos = {"a": torch.tensor([[[3.0, 0.0], [0.0, 1.0]]]), "b": torch.ones(1, 1, 1)}
    neg = {"a": torch.eye(2).unsqueeze(0), "b": torch.zeros(1, 1, 1)}
    # mse: layer a 4/4 = 1, layer b 1 -> d_pos 2; d_neg 0 -> 2 + 0.3
    r = contrastive_loss(anchor, pos, neg, t(0.5), t(0.5), t(0.5))
    assert r["gram"].item() == pytest.approx(2.3, abs=1e-6)
    # the brightness hinge with all brightnesses equal is exactly the margin
    assert r["brightness"].item() == pytest.approx(0.04, abs=1e-7)
    # sse: layer a 4 + layer b 1
    r = contrastive_loss(anchor, pos, neg, t(0.5), t(0.5), t(0.5), distance="sse")
    assert r["gram"].item() == pytest.approx(5.3, abs=1e-6)


def test_contrastive_without_negatives_is_plain_pull():
    r = contrastive_loss(_scalar_grams(2.0), _scalar_grams(4.0), None, t(0.2), t(0.5), None)
    assert r["gram"].item() == pytest.approx(4.0)
    assert r["brightness"].item() == pytest.approx(0.09, abs=1e-7)


def test_contrastive_shape_errors():
    with pytest.raises(ValueError, match="distance"):
        contrastive_loss(_scalar_grams(1.0), _scalar_grams(1.0), None, t(0.5), t(0.5), None, distance="l3")
    with pytest.raises(ValueError, match="lack layer"):
        contrastive_loss({"x": torch.zeros(1, 1, 1)}, _scalar_grams(1.0), None, t(0.5), t(0.5), None)
    with pytest.raises(ValueError, match="batch"):
        contrastive_loss(_scalar_grams(1.0, 2.0), _scalar_grams(1.0), None, t(0.5), t(0.5), None)


def test_pool_stats_subset_and_kind():
    stats = PoolStats(
        grams={"l": torch.arange(4.0).view(4, 1, 1)},
        brightness=t(0.1, 0.2, 0.8, 0.9),
        kind=torch.tensor([UNDER_EXPOSED, UNDER_EXPOSED, OVER_EXPOSED, OVER_EXPOSED]),
    )
    sub = stats.subset([3, 0])
    assert sub.brightness.tolist() == pytest.approx([0.9, 0.1]) and sub.kind.tolist() == [1, 0]
    assert sub.grams["l"].flatten().tolist() == [3.0, 0.0]
    over = stats.of_kind(OVER_EXPOSED)
    assert len(over) == 2 and over.brightness.tolist() == pytest.approx([0.8, 0.9])
    assert len(PoolStats.cat([stats, sub])) == 6
    with pytest.raises(ValueError):
        PoolStats(grams={"l": torch.zeros(3, 1, 1)}, brightness=torch.zeros(2))


# ------------------------------------------------------------------ semantic


def _image_from_brightness(values):
    """(B, 3, H, W) grey image with the given (B, H, W) brightness."""
    b = torch.tensor(values, dtype=torch.float32)
    return b.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def test_semantic_brightness_by_hand_ignores_void():
    img = _image_from_brightness([[[0.2, 0.4], [0.6, 0.9]]])
    img[0, :, 0, 1] = torch.tensor([0.3, 0.4, 0.5])  # coloured pixel, brightness = mean RGB = 0.4
    labels = torch.tensor([[[0, 0], [1, 255]]])
    # class 0: 0.2, 0.4 -> mean 0.3, squared deviations 0.01 + 0.01; class 1: one pixel, 0.
    # void excluded; 3 valid pixels -> 0.02 / 3
    assert semantic_brightness_loss(img, labels).item() == pytest.approx(0.02 / 3, abs=1e-7)
    img2 = img.clone()
    img2[0, :, 1, 1] = 0.0  # changing the void pixel changes nothing
    assert semantic_brightness_loss(img2, labels).item() == pytest.approx(0.02 / 3, abs=1e-7)
    # ignore_index is configurable
    assert semantic_brightness_loss(img, torch.tensor([[[0, 0], [1, 11]]]), ignore_index=11).item() == (
        pytest.approx(0.02 / 3, abs=1e-7)
    )


def test_semantic_brightness_absent_classes_contribute_nothing():
    img = _image_from_brightness([[[0.2, 0.4], [0.6, 0.9]]])
    a = semantic_brightness_loss(img, torch.tensor([[[0, 0], [1, 1]]]))
    b = semantic_brightness_loss(img, torch.tensor([[[3, 3], [10, 10]]]))  # ids 0-2, 4-9 absent
    # class A: 0.2, 0.4 -> 0.02 ; class B: 0.6, 0.9 -> mean 0.75 -> 2 * 0.0225 = 0.045 ; / 4 pixels
    assert a.item() == pytest.approx(0.065 / 4, abs=1e-7)
    assert b.item() == pytest.approx(a.item(), abs=1e-9)


def test_semantic_brightness_is_per_image():
    # Same class in two uniformly lit images of different brightness: zero loss (the released code,
    # which pooled the class over the batch, would give (0.3)^2 = 0.09).
    img = _image_from_brightness([[[0.2, 0.2], [0.2, 0.2]], [[0.8, 0.8], [0.8, 0.8]]])
    labels = torch.zeros(2, 2, 2, dtype=torch.long)
    assert semantic_brightness_loss(img, labels).item() == pytest.approx(0.0, abs=1e-9)


def test_semantic_brightness_all_void_is_zero_with_graph():
    img = torch.rand(1, 3, 2, 2, requires_grad=True)
    loss = semantic_brightness_loss(img, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert img.grad is not None


def test_semantic_brightness_shape_errors():
    with pytest.raises(ValueError):
        semantic_brightness_loss(torch.rand(1, 3, 2, 2), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        semantic_brightness_loss(torch.rand(1, 3, 2, 2), torch.zeros(1, 2, 2))


def test_segmentation_ce_by_hand_and_gradient_reaches_input():
    enhanced = torch.zeros(1, 3, 1, 3)
    head = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    head.requires_grad_(False)
    bias = torch.tensor([[0.0, math.log(3.0), 7.0], [0.0, 0.0, 0.0]]).view(1, 2, 1, 3)
    logits = head(enhanced) + bias
    labels = torch.tensor([[[0, 1, 255]]])
    # pixel 0: logits (0, 0), label 0 -> log 2 ; pixel 1: (ln 3, 0), label 1 -> log 4 ; pixel 2 void
    loss = segmentation_ce_loss(logits, labels)
    assert loss.item() == pytest.approx(1.5 * math.log(2.0), abs=1e-6)
    # with a real (frozen) segmenter the gradient reaches the enhanced image
    enhanced2 = torch.rand(1, 3, 4, 4, requires_grad=True)
    seg = nn.Conv2d(3, 5, 3, padding=1).requires_grad_(False)
    segmentation_ce_loss(seg(enhanced2), torch.randint(0, 5, (1, 4, 4))).backward()
    assert enhanced2.grad is not None and enhanced2.grad.abs().sum() > 0


def test_segmentation_ce_resizes_logits_and_handles_all_void():
    logits = torch.zeros(1, 4, 2, 2, requires_grad=True)
    loss = segmentation_ce_loss(logits, torch.zeros(1, 8, 8, dtype=torch.long))
    assert loss.item() == pytest.approx(math.log(4.0), abs=1e-6)
    loss = segmentation_ce_loss(logits, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0 and not torch.isnan(loss)


# ------------------------------------------------------------------ preservation & Zero-DCE terms


def test_feature_preservation_by_hand():
    a = torch.zeros(1, 2, 1, 2)
    b = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])
    assert feature_preservation_loss(a, b).item() == pytest.approx((1 + 4 + 0 + 1) / 4)
    with pytest.raises(ValueError):
        feature_preservation_loss(a, torch.zeros(1, 2, 2, 1))


def test_color_constancy_by_hand():
    x = torch.zeros(2, 3, 1, 2)
    x[0, 0] = torch.tensor([0.4, 0.6])  # J_R = 0.5
    x[0, 1] = torch.tensor([0.3, 0.3])  # J_G = 0.3
    x[0, 2] = torch.tensor([0.0, 0.2])  # J_B = 0.1
    x[1] = 0.7  # grey image: 0
    # image 0: (0.2)^2 + (0.4)^2 + (0.2)^2 = 0.24 ; batch mean 0.12
    assert color_constancy_loss(x).item() == pytest.approx(0.12, abs=1e-7)


def test_curve_smoothness_by_hand():
    a = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical diffs 2, 3 -> 13 / ((H-1) W = 2) = 6.5 ; horizontal 1, 2 -> 5 / (H (W-1) = 2) = 2.5
    # 2 * (6.5 + 2.5) / B = 18
    assert curve_smoothness_loss(a).item() == pytest.approx(18.0)
    # batch of two identical maps: sums double, divided by B = 2 -> same value
    assert curve_smoothness_loss(torch.cat([a, a])).item() == pytest.approx(18.0)
    assert curve_smoothness_loss(torch.full((1, 24, 3, 3), 0.3)).item() == 0.0


def test_scale_consistency_by_hand_and_estimate_curves_at_scale():
    assert scale_consistency_loss(torch.zeros(1, 24, 2, 2), torch.full((1, 24, 2, 2), 0.5)).item() == 0.25

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x.mean(dim=1, keepdim=True).repeat(1, 24, 1, 1)

    x = torch.full((2, 3, 32, 32), 0.4)
    up = estimate_curves_at_scale(Probe(), x, 0.25)
    assert seen == [(2, 3, 8, 8)]
    assert up.shape == (2, 24, 32, 32)
    torch.testing.assert_close(up, torch.full_like(up, 0.4))
    with pytest.raises(ValueError):
        estimate_curves_at_scale(Probe(), x, 0.0)


# ------------------------------------------------------------------ gradchecks (double, tiny)


def test_gradcheck_gram_matrix():
    f = torch.rand(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (f,))


def test_gradcheck_semantic_brightness():
    img = torch.rand(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[[0, 0, 1], [1, 255, 2], [2, 2, 0]], [[1, 1, 1], [0, 0, 255], [3, 3, 3]]])
    assert torch.autograd.gradcheck(lambda x: semantic_brightness_loss(x, labels), (img,))


def test_gradcheck_color_constancy():
    x = torch.rand(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(color_constancy_loss, (x,))


def test_gradcheck_curve_smoothness():
    a = torch.rand(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(curve_smoothness_loss, (a,))


def test_gradcheck_contrastive_active_hinge():
    g = torch.rand(2, 3, 3, dtype=torch.float64, requires_grad=True)
    e = torch.rand(2, dtype=torch.float64, requires_grad=True)
    pos = {"l": torch.rand(3, 3, 3, dtype=torch.float64)}
    neg = {"l": torch.rand(2, 3, 3, dtype=torch.float64)}
    pb, nb = torch.rand(3, dtype=torch.float64), torch.rand(2, dtype=torch.float64)

    def f(g, e):
        return contrastive_loss({"l": g}, pos, neg, e, pb, nb, gram_margin=10.0, brightness_margin=10.0)[
            "total"
        ]

    assert torch.autograd.gradcheck(f, (g, e))


# ------------------------------------------------------------------ distribution brightness statistic


def test_brightness_quantiles_by_hand():
    # Grey levels (mean over RGB) of a 2x2 image: 0, 0.2, 0.4, 0.6 (R=G=B).
    grey = t(0.0, 0.2, 0.4, 0.6).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    q = brightness_quantiles(grey, levels=2)  # levels 0.25 and 0.75, linear interpolation
    assert q.shape == (1, 2)
    assert torch.allclose(q, t(0.15, 0.45).view(1, 2), atol=1e-6)
    # Colour is averaged first: R=0.3, G=0, B=0 everywhere -> every quantile is 0.1.
    img = torch.zeros(2, 3, 4, 4)
    img[:, 0] = 0.3
    assert torch.allclose(brightness_quantiles(img, levels=5), torch.full((2, 5), 0.1), atol=1e-6)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        brightness_quantiles(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="levels"):
        brightness_quantiles(img, levels=0)


def test_distribution_distance_by_hand():
    a = t(0.2, 0.4).view(1, 2)
    b = torch.stack([t(0.2, 0.4), t(0.5, 0.5), t(0.0, 1.0)])
    d = distribution_distance(a, b)
    # E|X - Y|: (0 + .2 + .2 + 0)/4 = .1 ; (.3 + .3 + .1 + .1)/4 = .2 ; (.2 + .8 + .4 + .6)/4 = .5
    assert torch.allclose(d, t(0.1, 0.2, 0.5).view(1, 3), atol=1e-6)
    with pytest.raises(ValueError, match="quantiles"):
        distribution_distance(t(0.1, 0.2), b)


def test_contrastive_distribution_statistic_by_hand():
    grams = _scalar_grams(1.0)
    qa, qp, qn = t(0.2, 0.4).view(1, 2), t(0.5, 0.5).view(1, 2), t(0.2, 0.4).view(1, 2)
    # d(a,p) = .2, d(a,n) = .1 -> hinge .2 - .1 + .04 = .14
    r = contrastive_loss(grams, grams, grams, qa, qp, qn, brightness_stat="distribution")
    assert r["brightness"].item() == pytest.approx(0.14, abs=1e-6)
    # the mean statistic needs 1-D tensors, the distribution statistic 2-D ones
    with pytest.raises(ValueError, match="brightness tensors"):
        contrastive_loss(grams, grams, grams, qa, qp, qn)
    with pytest.raises(ValueError, match="brightness tensors"):
        contrastive_loss(grams, grams, grams, t(0.3), t(0.5), t(0.1), brightness_stat="distribution")
    with pytest.raises(ValueError, match="unknown brightness_stat"):
        contrastive_loss(grams, grams, grams, qa, qp, qn, brightness_stat="median")  # type: ignore[arg-type]


def test_pool_stats_carry_quantiles_through_subset_cat_and_to():
    p = PoolStats(grams={"l": torch.zeros(3, 1, 1)}, brightness=t(0.1, 0.5, 0.9), quantiles=torch.rand(3, 4))
    sub = p.subset([2, 0])
    assert torch.equal(sub.quantiles, p.quantiles[[2, 0]])
    both = PoolStats.cat([p, sub])
    assert both.quantiles.shape == (5, 4)
    assert both.to(dtype=torch.float64).quantiles.dtype == torch.float64
    assert torch.equal(p.brightness_stat("distribution"), p.quantiles)
    assert torch.equal(p.brightness_stat("mean"), p.brightness)
    bare = PoolStats(grams={"l": torch.zeros(3, 1, 1)}, brightness=t(0.1, 0.5, 0.9))
    with pytest.raises(ValueError, match="no quantiles"):
        bare.brightness_stat("distribution")
    assert PoolStats.cat([p, bare]).quantiles is None
    with pytest.raises(ValueError, match="quantiles must be"):
        PoolStats(grams={"l": torch.zeros(3, 1, 1)}, brightness=t(0.1, 0.5, 0.9), quantiles=torch.rand(2, 4))


def test_compute_pool_stats_quantiles_match_function():
    from sclle.models.vgg import VGG16Features

    vgg = VGG16Features(("relu1_2",), pretrained=False)
    imgs = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    st = compute_pool_stats(vgg, imgs, ("relu1_2",), batch_size=2)
    assert torch.allclose(st.quantiles, brightness_quantiles(imgs), atol=1e-6)


def test_gradcheck_contrastive_distribution_statistic():
    g = torch.Generator().manual_seed(3)
    img = (0.2 + 0.6 * torch.rand(1, 3, 3, 3, generator=g)).double().requires_grad_(True)
    qp = torch.rand(2, 8, generator=g).sort(dim=1).values.double()
    qn = (0.05 * torch.rand(2, 8, generator=g)).sort(dim=1).values.double()
    grams = {"l": torch.zeros(1, 1, 1, dtype=torch.float64)}

    def f(x):
        qa = brightness_quantiles(x, levels=8)
        return contrastive_loss(
            grams,
            {"l": grams["l"].expand(2, 1, 1)},
            {"l": grams["l"].expand(2, 1, 1)},
            qa,
            qp,
            qn,
            brightness_stat="distribution",
            brightness_margin=0.5,
        )["brightness"]

    assert f(img).item() > 0  # hinge active, so the check exercises the gradient
    assert torch.autograd.gradcheck(f, (img,), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------ Zero-DCE spatial consistency (optional)


def test_spatial_consistency_by_hand():
    low = torch.zeros(1, 3, 8, 8)
    enh = torch.zeros(1, 3, 8, 8)
    enh[:, :, :4, :4] = 0.4  # one bright 4x4 region of four: contrast 0.4 to two neighbours, input has 0
    # vertical pairs (0.4^2, 0) -> 0.08; horizontal pairs the same -> mean 0.08
    assert spatial_consistency_loss(low, enh).item() == pytest.approx(0.08, abs=1e-7)
    # a uniform brightness offset keeps every local difference: zero
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    assert spatial_consistency_loss(x, x + 0.1).item() == pytest.approx(0.0, abs=1e-10)
    # doubling the contrast is penalised; region=1 compares single pixels
    assert spatial_consistency_loss(x * 0.5, x).item() > 0
    assert spatial_consistency_loss(x, x * 2, region=1).item() > spatial_consistency_loss(x, x * 2).item()
    with pytest.raises(ValueError, match="must be equal"):
        spatial_consistency_loss(x, x[:, :, :8])
    with pytest.raises(ValueError, match="2x2 regions"):
        spatial_consistency_loss(x[..., :6, :6], x[..., :6, :6])


def test_gradcheck_spatial_consistency():
    g = torch.Generator().manual_seed(4)
    low = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
    enh = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: spatial_consistency_loss(low, e, region=2), (enh,))


def test_hue_preservation_by_hand():
    low = torch.zeros(1, 3, 1, 1)
    low[:, 0] = 0.1  # pure red
    enh = torch.zeros(1, 3, 1, 1)
    enh[:, 0], enh[:, 1] = 0.5, 0.5  # yellow: 45 degrees away
    assert hue_preservation_loss(low, enh, region=1, eps=0).item() == pytest.approx(1 - math.cos(math.pi / 4))
    x = torch.rand(2, 3, 8, 8) * 0.3 + 0.05
    assert hue_preservation_loss(x, x * 2.5, eps=0).item() == pytest.approx(
        0.0, abs=1e-6
    )  # brighter, same colour
    grey = x.mean(dim=1, keepdim=True).expand_as(x)
    tint = x.clone()
    tint[:, 1] += 0.05
    assert hue_preservation_loss(x, grey).item() > 0  # greying costs
    assert hue_preservation_loss(x, tint).item() > 0  # a green tint costs
    assert HuePreservationLoss(region=2)(x, tint).item() == pytest.approx(
        hue_preservation_loss(x, tint, 2).item()
    )
    with pytest.raises(ValueError):
        hue_preservation_loss(x, x[:, :, :4])


def test_gradcheck_hue_preservation():
    g = torch.Generator().manual_seed(5)
    low = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64) + 0.1
    enh = (torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: hue_preservation_loss(low, e, region=2), (enh,))


def test_exposure_control_by_hand():
    # 2 patches of 2x2 along W: grey means 0.2 (left) and 0.9 (right); |0.2-0.6| = 0.4, |0.9-0.6| = 0.3
    enh = torch.zeros(1, 3, 2, 4)
    enh[..., :2] = 0.2
    enh[..., 2:] = torch.tensor([0.6, 0.9, 1.2]).view(1, 3, 1, 1)  # grey 0.9
    assert exposure_control_loss(enh, level=0.6, patch=2).item() == pytest.approx(0.35, abs=1e-7)
    # a 5th column is a partial patch: left out
    wider = torch.cat([enh, torch.zeros(1, 3, 2, 1)], dim=-1)
    assert exposure_control_loss(wider, level=0.6, patch=2).item() == pytest.approx(0.35, abs=1e-7)
    # per patch, not global: a global target would give |0.55 - 0.6| = 0.05
    assert ExposureControlLoss(level=0.6, patch=2)(enh).item() == pytest.approx(0.35, abs=1e-7)
    assert exposure_control_loss(torch.full((1, 3, 4, 4), 0.6), patch=2).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="patch"):
        exposure_control_loss(enh, patch=3)
    with pytest.raises(ValueError, match="level"):
        exposure_control_loss(enh, level=1.5, patch=2)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        exposure_control_loss(enh[:, :1], patch=2)


def test_gradcheck_exposure_control():
    torch.manual_seed(0)
    enh = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: exposure_control_loss(e, level=0.47, patch=2), (enh,))


def test_gram_view_rgb_is_identity_grey_is_channel_mean_everywhere():
    x = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1).expand(2, 3, 2, 2).contiguous()
    assert gram_view(x, "rgb") is x
    g = gram_view(x, "grey")
    assert g.shape == x.shape
    torch.testing.assert_close(g, torch.full_like(x, 0.5))
    with pytest.raises(ValueError, match="gram_input"):
        gram_view(x, "luma")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        gram_view(x[:, :1], "grey")


def test_gradcheck_gram_view_grey():
    x = torch.rand(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gram_view(t, "grey"), (x,))

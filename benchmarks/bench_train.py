"""Seconds per SCL-LLE training step, broken down by part, and cached vs uncached pool statistics.

    python benchmarks/bench_train.py [--config configs/scl_default.yaml] [--device cpu] [--steps 5]
                                     [--batch 8] [--crop 256] [--threads N] [--segmenter FILE]

Parts timed per step (forward + backward where there is one; CUDA synchronised around each part):
  data        StreetScenes.batch (crop, flip, darkening)
  enhancer    DCE-Net forward + apply_curves
  vgg         VGG-16 on the enhanced image (Gram layers + relu4_3) and on the input (preservation)
  segmenter   the frozen semantic prior on the enhanced image (if a segmenter is available)
  losses      all loss terms given the features
  backward    total.backward() + Adam step
"Pool stats" compares computing the VGG statistics of the whole pool once (uncached) with loading
them from the cache, and with the per-step alternative of running VGG on the sampled pool images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/scl_default.yaml")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--crop", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--pool-images", type=int, default=16, help="pool images per kind for the stats timing")
    p.add_argument(
        "--segmenter", default=None, help="segmenter name/file (default: bundled, skipped if absent)"
    )
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    from sclle.core.device import resolve_device
    from sclle.data.darken import DarkenProtocol
    from sclle.data.street import StreetScenes
    from sclle.losses.contrastive import gram_matrix, gram_view
    from sclle.losses.objective import SCLObjective
    from sclle.models.dce import apply_curves
    from sclle.train.config import load_config
    from sclle.train.pool_stats import StatsPool
    from sclle.train.trainer import init_enhancer

    sets = []
    if a.batch:
        sets.append(f"schedule.batch={a.batch}")
    if a.crop:
        sets.append(f"schedule.crop={a.crop}")
    cfg = load_config(a.config, sets)
    device = resolve_device(a.device)
    sch, d, lc = cfg.schedule, cfg.data, cfg.loss
    print(
        f"device {device}, threads {torch.get_num_threads()}, batch {sch.batch}, crop {sch.crop}, "
        f"pool n_pos {sch.n_pos} n_neg {sch.n_neg}"
    )

    torch.manual_seed(0)
    net = init_enhancer(cfg).to(device).train()
    objective = SCLObjective(lc).to(device)
    vgg = objective.vgg
    prior = None
    try:
        from sclle.models.segmentation import SemanticPrior, load_segmenter

        prior = SemanticPrior(load_segmenter(a.segmenter or cfg.model.segmenter, device=device)).to(device)
    except Exception as exc:
        print(f"segmenter: skipped ({str(exc)[:100]}...)")
    street = StreetScenes(
        d.dataset,
        d.root,
        d.split,
        crop=sch.crop,
        protocol=DarkenProtocol(d.gamma_range, d.exposure_range),
        seed=0,
        preload="cpu" if device.type == "cpu" else "device",
        device=device,
    )
    pool = StatsPool.load(d.pool)

    # ---- pool statistics, once per run: computed (uncached) vs loaded from the cache. Timed on the
    # first --pool-images images of each kind (the full pool's cost scales linearly). The VGG pass
    # stops after the deepest Gram layer (VGG16Features.forward(x, layers)).
    import dataclasses

    n_sub = min(a.pool_images, len(pool.positives))
    sub = dataclasses.replace(
        pool, positives=pool.positives[:n_sub], negatives=pool.negatives[:n_sub], kinds=pool.kinds[:n_sub]
    )
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        sub.stats(vgg, lc.gram_layers, sch.crop, cache, device=device, gram_input=lc.gram_input)
        _sync(device)
        t_uncached = time.perf_counter() - t
        t = time.perf_counter()
        stats = sub.stats(vgg, lc.gram_layers, sch.crop, cache, device=device, gram_input=lc.gram_input)
        _sync(device)
        t_cached = time.perf_counter() - t
    n_img = 2 * n_sub
    print(
        f"pool stats, {n_img} images at {sch.crop}px: computed with the VGG cut at {lc.gram_layers[-1]} "
        f"{t_uncached:.2f} s "
        f"({t_uncached / n_img * 1000:.0f} ms/image -> ~{t_uncached / n_img * len(pool):.0f} s for all "
        f"{len(pool)}), loaded from cache {t_cached:.3f} s (incl. content hash)"
    )
    pool = sub  # per-step sampling costs the same on the subset

    opt = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr)
    times: dict[str, list[float]] = defaultdict(list)
    pos_imgs, neg_imgs, _ = pool.load_images(sch.crop)

    for step in range(a.warmup + a.steps):
        rec = step >= a.warmup
        tt: dict[str, float] = {}

        def tick(name: str, t0: float, tt=tt) -> float:
            _sync(device)
            now = time.perf_counter()
            tt[name] = tt.get(name, 0.0) + now - t0
            return now

        t0 = time.perf_counter()
        b = street.batch(step, sch.batch)
        g = torch.Generator().manual_seed(step)
        pi, ni = pool.sample(sch.n_pos, g, n_neg=sch.n_neg)
        pos, neg = stats.positives.subset(pi), stats.negatives.subset(ni)
        t0 = tick("data", t0)
        curves = net(b.low)
        enh = apply_curves(b.low, curves)
        t0 = tick("enhancer (fwd)", t0)
        feats = vgg(enh)
        gram_feats = feats if lc.gram_input == "rgb" else vgg(gram_view(enh, lc.gram_input), lc.gram_layers)
        with torch.no_grad():
            f_in = vgg(b.low)[lc.preservation_layer]
        t0 = tick("vgg (fwd)", t0)
        seg = prior(enh) if prior is not None else None
        t0 = tick("segmenter (fwd)", t0)
        from sclle.losses.contrastive import contrastive_loss, mean_brightness
        from sclle.losses.preservation import (
            color_constancy_loss,
            curve_smoothness_loss,
            feature_preservation_loss,
        )
        from sclle.losses.semantic import segmentation_ce_loss, semantic_brightness_loss

        w = lc.weights
        c = contrastive_loss(
            {n: gram_matrix(gram_feats[n]) for n in lc.gram_layers},
            pos.grams,
            neg.grams,
            mean_brightness(enh),
            pos.brightness,
            neg.brightness,
        )
        total = w.contrastive_gram * c["gram"] + w.contrastive_brightness * c["brightness"]
        total = total + w.semantic_brightness * semantic_brightness_loss(enh, b.labels)
        if seg is not None:
            total = total + w.segmentation_ce * segmentation_ce_loss(seg, b.labels)
        total = total + w.feature_preservation * feature_preservation_loss(f_in, feats[lc.preservation_layer])
        total = total + w.color * color_constancy_loss(enh) + w.smoothness * curve_smoothness_loss(curves)
        t0 = tick("losses", t0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        t0 = tick("backward + Adam (all parts)", t0)
        # the alternative without cached statistics: VGG on the sampled pool images every step
        with torch.no_grad():
            x = torch.cat([pos_imgs[pi], neg_imgs[ni]]).to(device)
            _ = {n: gram_matrix(f) for n, f in vgg(gram_view(x, lc.gram_input), lc.gram_layers).items()}
        tick("[uncached alternative: VGG on sampled pool images]", t0)
        if rec:
            for k, v in tt.items():
                times[k].append(v)

    print(f"\nper step, mean of {a.steps} steps after {a.warmup} warm-up:")
    step_total = 0.0
    for k, v in times.items():
        m = sum(v) / len(v)
        if not k.startswith("["):
            step_total += m
        print(f"  {k:<55s} {m * 1000:9.1f} ms")
    print(f"  {'step total (cached pool statistics)':<55s} {step_total * 1000:9.1f} ms")


if __name__ == "__main__":
    main()

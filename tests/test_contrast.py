"""Contrastive pool: building from multi-exposure sequences, loading, cached VGG statistics, sampling."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from sclle import imageio
from sclle.data.contrast import PoolParams, alignment, build_pool, discover_scenes
from sclle.train import pool_stats  # the pool's VGG statistics live above data and losses
from sclle.train.pool_stats import StatsPool

from conftest import exposures, shared_path, textured_scene, write_rgb


@pytest.fixture
def flat_source(tmp_path):
    """Frames in one folder + a CSV: a good scene, a misaligned scene (shifted view), a singleton."""
    rng = np.random.default_rng(0)
    src = tmp_path / "frames"
    src.mkdir()
    rows = []
    n = 0
    good = exposures(textured_scene(rng))
    order = [3, 0, 4, 1, 2]  # files not in exposure order, as in SICE's lexicographic numbering
    for k in order:
        n += 1
        write_rgb(src / f"{n}.png", good[k])
        rows.append((f"{n}.png", "a"))
    shifted_scene = textured_scene(rng)
    frames = exposures(shifted_scene)
    for k, f in enumerate(frames):  # every other exposure comes from a view shifted by 6 px
        n += 1
        write_rgb(src / f"{n}.png", np.roll(f, 6 * (k % 2), axis=1))
        rows.append((f"{n}.png", "b"))
    n += 1
    write_rgb(src / f"{n}.png", textured_scene(rng))
    rows.append((f"{n}.png", "c"))
    with open(src / "sequences.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "sequence_id"])
        w.writerows(rows)
    return src


def test_alignment_detects_shift():
    rng = np.random.default_rng(1)
    frames = [np.round(f * 255).astype(np.uint8) for f in exposures(textured_scene(rng, 128))]
    corr, shift = alignment(frames, side=128, corr_side=64)
    assert min(corr) > 0.5 and max(shift) < 0.5
    shifted = [np.roll(f, 8 * (i % 2), axis=1) for i, f in enumerate(frames)]
    _, shift2 = alignment(shifted, side=128, corr_side=64)
    assert max(shift2) > 3.0


def test_build_pool_keeps_good_drops_misaligned_and_singleton(flat_source, tmp_path):
    out = tmp_path / "pool"
    meta = build_pool(
        flat_source, out, params=PoolParams(size=64, align_side=96, corr_side=48), progress=False
    )
    assert [s["id"] for s in meta["scenes"]] == ["a"]
    reasons = {d["id"]: d["reason"] for d in meta["dropped"]}
    assert reasons["c"] == "singleton"
    assert "do not align" in reasons["b"]
    scene = meta["scenes"][0]
    # sorted by brightness, not file number; darkest/brightest become the negatives
    assert scene["frame_means"] == sorted(scene["frame_means"])
    assert scene["under"]["frame"] == "2.png" and scene["over"]["frame"] == "3.png"
    for sub in ("positives", "negatives/under", "negatives/over"):
        img = imageio.read_image(out / sub / "a.png").rgb
        assert min(img.shape[:2]) == 64
    pos = imageio.read_image(out / "positives" / "a.png").rgb.mean()
    under = imageio.read_image(out / "negatives" / "under" / "a.png").rgb.mean()
    over = imageio.read_image(out / "negatives" / "over" / "a.png").rgb.mean()
    assert under < pos < over
    assert (out / "contact_sheet.png").is_file()
    assert json.loads((out / "pool.json").read_text())["counts"]["scenes_kept"] == 1


def test_sice_layout_uses_reference(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "Dataset_Part1"
    scene = textured_scene(rng)
    (root / "1").mkdir(parents=True)
    (root / "Label").mkdir()
    for k, f in enumerate(exposures(scene)):
        write_rgb(root / "1" / f"{k + 1}.png", f)
    write_rgb(root / "Label" / "1.png", np.full_like(scene, 0.5))
    scenes, _ = discover_scenes(root)
    assert len(scenes) == 1 and scenes[0].reference is not None and len(scenes[0].frames) == 5
    meta = build_pool(
        root,
        tmp_path / "pool",
        params=PoolParams(size=48, align_side=96, corr_side=48),
        progress=False,
        sheet=False,
    )
    assert meta["scenes"][0]["positive_source"].startswith("reference")
    assert abs(imageio.read_image(tmp_path / "pool" / "positives" / "1.png").rgb.mean() - 0.5) < 0.01


class _TinyVGG(torch.nn.Module):
    """Stand-in for VGG16Features (same interface, random frozen convs)."""

    layers = ("relu1_2", "relu2_2")
    fingerprint = "tiny-vgg"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 6, 3, padding=1)

    def forward(self, x, layers=None):
        a = torch.relu(self.c1(x))
        out = {"relu1_2": a, "relu2_2": torch.relu(self.c2(a))}
        return {n: out[n] for n in (layers or self.layers)}


@pytest.fixture
def small_pool(flat_source, tmp_path):
    """A pool built from the synthetic scenes (64 px)."""
    pool_dir = tmp_path / "pool"
    build_pool(
        flat_source,
        pool_dir,
        params=PoolParams(size=64, align_side=96, corr_side=48),
        progress=False,
        sheet=False,
    )
    return pool_dir


def test_stats_are_cached_and_sampling(small_pool, tmp_path):
    pool_dir = small_pool
    pool = StatsPool.load(pool_dir)
    assert len(pool.positives) == 1 and sorted(pool.kinds) == [0, 1]
    vgg = _TinyVGG()
    cache = tmp_path / "cache"
    before = pool_stats.STATS_COMPUTE_COUNT
    s1 = pool.stats(vgg, ["relu1_2", "relu2_2"], 32, cache)
    files = list(cache.glob("pool_stats_*.pt"))
    assert len(files) == 1 and before + 1 == pool_stats.STATS_COMPUTE_COUNT
    mtime = files[0].stat().st_mtime_ns
    s2 = pool.stats(vgg, ["relu1_2", "relu2_2"], 32, cache)
    assert before + 1 == pool_stats.STATS_COMPUTE_COUNT, "second call must load the cache"
    assert files[0].stat().st_mtime_ns == mtime
    torch.testing.assert_close(s1.negatives.grams["relu2_2"], s2.negatives.grams["relu2_2"])
    assert s1.positives.grams["relu1_2"].shape == (1, 4, 4)
    assert s1.negatives.kind.tolist() == [0, 1]
    # grey-level quantiles (brightness_stat="distribution") are cached with the Grams
    from sclle.losses.contrastive import brightness_quantiles

    pos_imgs, neg_imgs, _ = pool.load_images(32)
    torch.testing.assert_close(s2.negatives.quantiles, brightness_quantiles(neg_imgs))
    torch.testing.assert_close(s1.positives.quantiles, brightness_quantiles(pos_imgs))
    # another crop size is another cache entry
    pool.stats(vgg, ["relu1_2", "relu2_2"], 24, cache)
    assert before + 2 == pool_stats.STATS_COMPUTE_COUNT
    # grey Grams are another entry too, with the same brightness; the colour entry's key is unchanged
    grey = pool.stats(vgg, ["relu1_2", "relu2_2"], 32, cache, gram_input="grey")
    assert before + 3 == pool_stats.STATS_COMPUTE_COUNT
    assert not torch.allclose(grey.positives.grams["relu1_2"], s1.positives.grams["relu1_2"])
    torch.testing.assert_close(grey.positives.brightness, s1.positives.brightness)
    assert pool.stats_cached(vgg.fingerprint, ["relu1_2", "relu2_2"], 32, cache, "grey")
    assert pool._stats_key("f", ["relu1_2"], 32, cache) == pool._stats_key("f", ["relu1_2"], 32, cache, "rgb")
    # sampling: balanced kinds, only the allowed kinds, reproducible from the generator
    pi, ni = pool.sample(2, torch.Generator().manual_seed(0), n_neg=4)
    assert pi.tolist() == [0, 0] and sorted(torch.tensor(pool.kinds)[ni].tolist()) == [0, 0, 1, 1]
    _, ni = pool.sample(2, torch.Generator().manual_seed(0), kinds=(1,), n_neg=3)
    assert torch.tensor(pool.kinds)[ni].tolist() == [1, 1, 1]


def test_run_pool_takes_grams_of_what_the_objective_compares(small_pool, tmp_path):
    """``RunPool.load`` passes ``loss.gram_input`` on: grey anchors are never compared with colour Grams."""
    from sclle.losses.objective import LossConfig
    from sclle.train.config import TrainConfig
    from sclle.train.distributed import DistContext
    from sclle.train.pool_stats import RunPool

    pool_dir = small_pool
    vgg = _TinyVGG()
    loaded = {}
    for gi in ("rgb", "grey"):
        cfg = TrainConfig()
        cfg.data.pool, cfg.schedule.crop, cfg.logging.cache_dir = str(pool_dir), 32, str(tmp_path / "cache")
        cfg.loss = LossConfig(gram_input=gi)
        run = RunPool.load(cfg, vgg, cfg.loss.requirements(), DistContext(), torch.device("cpu"))
        direct = StatsPool.load(pool_dir).stats(vgg, ["relu1_2", "relu2_2"], 32, gram_input=gi)
        torch.testing.assert_close(run.stats.positives.grams["relu1_2"], direct.positives.grams["relu1_2"])
        pos, neg = run.draw(0)
        assert pos.gram_input == gi and neg is not None and neg.gram_input == gi
        loaded[gi] = run.stats.positives.grams["relu1_2"]
    assert not torch.allclose(loaded["rgb"], loaded["grey"])


def test_real_sice_frames_scene_grouping():
    """On the shared SICE frames: the CSV's singletons are skipped and groups are found."""
    src = shared_path("data", "sice_part1", "sequences_heuristic.csv")
    scenes, skipped = discover_scenes(src.parent)
    assert len(scenes) > 200
    assert sum(s["reason"] == "singleton" for s in skipped) > 20


def test_held_out_sice_scenes_never_enter_the_pool(tmp_path):
    """A scene with a frame of the held-out SICE list (the benchmark's real pairs) is skipped by default."""
    from sclle.data.pool_builder import training_scenes
    from sclle.data.sice import held_out_files, held_out_scenes

    names = next(f for f in held_out_scenes().values() if len(f) >= 3)
    rng = np.random.default_rng(3)
    src = tmp_path / "frames"
    src.mkdir()
    rows = []
    for name, frame in zip(names, exposures(textured_scene(rng)), strict=False):  # named as the real frames
        write_rgb(src / name, frame)
        rows.append((name, "held"))
    for k, frame in enumerate(exposures(textured_scene(rng))):
        write_rgb(src / f"free{k}.png", frame)
        rows.append((f"free{k}.png", "free"))
    with open(src / "sequences.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("file", "sequence_id"), *rows])

    meta = build_pool(src, tmp_path / "pool", progress=False, sheet=False)
    assert [s["id"] for s in meta["scenes"]] == ["free"] and meta["counts"]["scenes_held_out"] == 1
    used = {f for s in [*meta["scenes"], *meta["dropped"]] for f in s["frames"]}
    assert not used & held_out_files()
    assert sorted(p.stem for p in (tmp_path / "pool").rglob("*.png")) == ["free", "free", "free"]

    opened = build_pool(src, tmp_path / "pool2", progress=False, sheet=False, exclude_held_out=False)
    assert sorted(s["id"] for s in opened["scenes"]) == ["free", "held"]  # the frames themselves were usable
    # the exposure fits' training scenes exclude them too
    assert [scene.id for scene, _, _ in training_scenes(src, limit=5)] == ["free"]

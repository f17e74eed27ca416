"""Segmentation training: device-side augmentation and a few-step run end to end."""

from __future__ import annotations

import csv

import pytest
import torch

from sclle.data.seg_transforms import random_darken, random_scale_crop_flip
from sclle.models.segmentation import load_segmenter
from sclle.train.segmentation import SegTrainConfig, train_segmenter

from conftest import make_random_camvid


def test_scale_one_full_crop_is_identity_or_flip():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (6, 3, 10, 14), dtype=torch.uint8)
    lbls = torch.randint(0, 11, (6, 10, 14), dtype=torch.uint8)
    x, y = random_scale_crop_flip(imgs, lbls, (10, 14), scale_range=(1.0, 1.0), generator=g)
    assert x.dtype == torch.float32 and y.dtype == torch.long
    ref = imgs.float() / 255
    flips = 0
    for i in range(6):
        if torch.equal(y[i], lbls[i].long()):
            assert torch.allclose(x[i], ref[i], atol=1e-5)
        else:
            assert torch.equal(y[i], lbls[i].long().flip(-1))
            assert torch.allclose(x[i], ref[i].flip(-1), atol=1e-5)
            flips += 1
    assert 0 < flips < 6


def test_downscale_pads_with_ignore():
    imgs = torch.full((2, 3, 40, 40), 200, dtype=torch.uint8)
    lbls = torch.full((2, 40, 40), 3, dtype=torch.uint8)
    x, y = random_scale_crop_flip(imgs, lbls, (40, 40), scale_range=(0.5, 0.5), hflip=False)
    ignored = (y == 255).float().mean().item()
    assert 0.65 < ignored < 0.85  # the half-size image covers ~1/4 of the window
    assert set(y.unique().tolist()) == {3, 255}
    outside = x[(y == 255).unsqueeze(1).expand_as(x)]
    assert (outside == 0).float().mean() > 0.9  # black padding (bilinear blends only the border row)


def test_random_darken_only_darkens():
    x = torch.rand(8, 3, 6, 6) * 0.9 + 0.05
    y = random_darken(x, prob=1.0, gamma_range=(2.0, 3.0), exposure_range=(1.0, 1.0))
    assert (y <= x + 1e-6).all() and (y < x).any()
    assert torch.equal(random_darken(x, prob=0.0), x)


@pytest.mark.slow
def test_few_steps_lower_loss_and_export(tmp_path):
    make_random_camvid(tmp_path / "camvid", splits=("train", "val"), n=2, size=(48, 64))
    cfg = SegTrainConfig(
        data_root=str(tmp_path / "camvid"),
        out=str(tmp_path / "run"),
        pretrained_backbone=False,
        epochs=4,
        batch_size=2,
        crop=(48, 64),
        scale_range=(1.0, 1.0),
        hflip=False,
        lr=3e-3,
        encoder_lr_mult=1.0,
        warmup_steps=0,
        device="cpu",
        workers=0,
        eval_test=False,
        progress=False,
        log_every=1,
    )
    path = train_segmenter(cfg)
    with (tmp_path / "run" / "log.csv").open() as fh:
        losses = [float(r["train_loss"]) for r in csv.DictReader(fh)]
    assert len(losses) == 4
    assert min(losses[-2:]) < losses[0]
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "tb").is_dir()
    model = load_segmenter(path)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 48, 64)).shape == (1, 11, 48, 64)
    meta = (path.with_suffix(".json")).read_text()
    assert '"per_class_iou"' in meta and '"recipe"' in meta
    # resume continues after the last epoch instead of starting over
    cfg.epochs, cfg.resume = 5, True
    train_segmenter(cfg)
    with (tmp_path / "run" / "log.csv").open() as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == list(range(5))


@pytest.mark.slow
def test_init_from_starts_at_the_given_weights(tmp_path):
    """--init-from: zero training steps must export exactly the weights it started from (fp16)."""
    from sclle.errors import SclleError
    from sclle.models.segmentation import DeepLabV3Plus, read_segmenter_state, save_segmenter

    make_random_camvid(tmp_path / "camvid", splits=("train", "val"), n=2, size=(48, 64))
    torch.manual_seed(5)
    start = save_segmenter(DeepLabV3Plus(num_classes=11), tmp_path / "start.safetensors")
    cfg = SegTrainConfig(
        data_root=str(tmp_path / "camvid"),
        out=str(tmp_path / "run"),
        init_from=str(start),
        epochs=1,
        max_steps=0,
        batch_size=2,
        crop=(48, 64),
        device="cpu",
        workers=0,
        eval_test=False,
        progress=False,
    )
    out = train_segmenter(cfg)
    a, b = read_segmenter_state(start)[0], read_segmenter_state(out)[0]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a segmenter with a different class count is refused with a message naming the option
    save_segmenter(DeepLabV3Plus(num_classes=5), tmp_path / "five.safetensors")
    cfg.init_from, cfg.out = str(tmp_path / "five.safetensors"), str(tmp_path / "run2")
    with pytest.raises(SclleError, match="init-from"):
        train_segmenter(cfg)

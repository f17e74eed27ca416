"""The semantic CE term in training: a frozen segmenter (random weights here) guides the enhancer."""

from __future__ import annotations

import pytest
import torch

from sclle.train.trainer import load_checkpoint, train

from conftest import make_train_cfg


@pytest.mark.slow
def test_training_with_a_segmenter(data, vgg, tmp_path):
    from sclle.models.segmentation import DeepLabV3Plus, save_segmenter

    torch.manual_seed(0)
    seg = DeepLabV3Plus(backbone="efficientnet-lite0", num_classes=11).eval()
    seg_file = save_segmenter(seg, tmp_path / "seg.safetensors")
    seen: list[dict] = []
    cfg = make_train_cfg(
        data,
        tmp_path / "r",
        **{
            "schedule.steps": 2,
            "loss.weights.segmentation_ce": 1,
            "model.segmenter": str(seg_file),
            "data.val_dir": "null",
        },
    )
    final = train(cfg, vgg=vgg, callback=lambda s, losses: seen.append(losses))
    assert all("segmentation_ce" in s and torch.isfinite(torch.tensor(s["total"])) for s in seen)
    assert load_checkpoint(final)["step"] == 2

"""Darkness benchmark and the segmentation confusion matrix."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from sclle.evaluate.darkness import darkness_benchmark
from sclle.evaluate.segmentation import evaluate_segmentation
from sclle.metrics.segmentation import SegConfusion


class DecodeSegmenter(nn.Module):
    """A 'perfect' segmenter for images whose red channel encodes the label as label / 10."""

    num_classes = 11

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lbl = (x[:, 0] * 10).round().long().clamp(0, 10)
        return nn.functional.one_hot(lbl, 11).permute(0, 3, 1, 2).float()


def _dataset(n=2, h=12, w=16):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 11, (n, h, w), generator=g)
    images = torch.rand(n, 3, h, w, generator=g)
    images[:, 0] = labels.float() / 10
    labels[:, 0, 0] = 255  # an ignored pixel
    return TensorDataset(images, labels)


def test_confusion_matrix_by_hand():
    conf = SegConfusion(3)
    target = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    conf.update(pred, target)
    # class 0: tp 1, fp 1 (the 2 predicted 0), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0 -> 0
    iou = conf.iou().tolist()
    assert math.isclose(iou[0], 1 / 3) and math.isclose(iou[1], 2 / 3) and iou[2] == 0.0
    assert math.isclose(conf.miou(), (1 / 3 + 2 / 3) / 3)
    assert math.isclose(conf.pixel_accuracy(), 3 / 5)
    empty = SegConfusion(2)
    empty.update(torch.tensor([0]), torch.tensor([0]))
    assert math.isnan(empty.iou()[1]) and empty.miou() == 1.0


def test_evaluate_perfect_segmenter():
    scores = evaluate_segmentation(DecodeSegmenter(), _dataset(), batch_size=2, device="cpu", progress=False)
    assert scores.miou == 1.0 and scores.n_images == 2


def test_darkness_benchmark_writes_tables(tmp_path):
    def identity(x):
        return x

    def undo_gamma2(x):  # an "enhancer" that inverts gamma 2 exactly
        return x.sqrt()

    rows = darkness_benchmark(
        [identity, undo_gamma2, "none"],
        data_root=None,
        gammas=(1, 2, 6),
        segmenter=DecodeSegmenter(),
        dataset=_dataset(),
        out_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    assert len(rows) == 9
    by = {(r["method"], r["gamma"]): r["miou"] for r in rows}
    assert by[("identity", 1.0)] == 1.0
    assert by[("identity", 6.0)] < 0.5  # darkening breaks the segmenter...
    assert by[("undo_gamma2", 2.0)] > 0.99  # ...and the right enhancement restores it
    assert by[("none", 6.0)] == by[("identity", 6.0)]
    for name in ("darkness.csv", "darkness.md", "darkness.png"):
        assert (tmp_path / name).stat().st_size > 0
    with (tmp_path / "darkness.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 9 and "iou_Sky" in table[0]
    md = (tmp_path / "darkness.md").read_text()
    assert "| undo_gamma2 |" in md and "γ=6" in md
    assert (tmp_path / "darkness.png").read_bytes()[:4] == b"\x89PNG"


def test_darkness_margins_against_a_reference(tmp_path):
    from sclle.evaluate.margins import _miou

    def identity(x):
        return x

    def undo_gamma2(x):
        return x.sqrt()

    rows = darkness_benchmark(
        [identity, undo_gamma2], data_root=None, gammas=(1, 2), segmenter=DecodeSegmenter(),
        dataset=_dataset(n=6), out_dir=tmp_path, device="cpu", progress=False, against=["identity"],
    )  # fmt: skip
    by = {(r["method"], r["gamma"]): r for r in rows}
    assert by[("identity", 2.0)]["margins"] == {}  # the reference is not compared with itself
    m = by[("undo_gamma2", 2.0)]["margins"]["identity"]
    assert m.n == 6 and m.delta == pytest.approx(
        by[("undo_gamma2", 2.0)]["miou"] - by[("identity", 2.0)]["miou"]
    )
    assert m.delta > 0.3 and m.lo > 0 and m.verdict == "better"  # the inverse restores what gamma 2 broke
    same = by[("undo_gamma2", 1.0)]["margins"]["identity"]  # at gamma 1 both see a clean image...
    assert same.delta < 0  # ...and the square root brightens it, which this segmenter misreads
    with (tmp_path / "darkness_margins.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert {(r["method"], r["reference"], float(r["gamma"])) for r in table} == {
        ("undo_gamma2", "identity", 1.0), ("undo_gamma2", "identity", 2.0)
    }  # fmt: skip
    assert "difference from **identity**" in (tmp_path / "darkness.md").read_text()
    with open(tmp_path / "darkness.csv") as fh:
        assert "margins" not in next(csv.reader(fh))
    with pytest.raises(Exception, match="not among"):
        darkness_benchmark([identity], data_root=None, gammas=(1,), segmenter=DecodeSegmenter(),
                           dataset=_dataset(), device="cpu", progress=False, against=["he"])  # fmt: skip
    cms = np.zeros((2, 3, 3), dtype=np.int64)
    cms[0] = np.diag([5, 0, 1])
    cms[1, 0, 1] = 5  # one image right, one wrong: IoU 0.5 on class 0, 0 on 1, 1 on 2
    assert _miou(cms.sum(0)) == pytest.approx((0.5 + 0.0 + 1.0) / 3)

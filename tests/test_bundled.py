"""The bundled models: present, hash-consistent, usable offline, and the README quick start works."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sclle.cli import app
from sclle.models import registry

from conftest import shared_path

SAMPLE = resources.files("sclle") / "assets" / "sample_dark.jpg"


def test_default_enhancer_is_bundled_and_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    name = registry.default_model_name()
    assert name is not None, "a bundled default enhancer must ship with the package"
    entry = registry.get_entry(name)
    assert entry.bundled and entry.url is None
    path = registry.resolve_weights(name, download=False)  # no network needed
    assert registry.sha256_file(path) == entry.sha256
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in ("steps", "loss", "data", "scores"):
        assert meta.get(key), f"metadata lacks {key}"


def test_quick_start_enhances_the_sample(tmp_path):
    out = tmp_path / "enhanced"
    r = CliRunner().invoke(app, ["enhance", str(SAMPLE), "-o", str(out), "--compare", "-q"])
    assert r.exit_code == 0, r.output
    before = np.asarray(Image.open(str(SAMPLE)), dtype=float)
    after = np.asarray(Image.open(out / "sample_dark.jpg"), dtype=float)
    assert after.shape == before.shape
    assert after.mean() > before.mean() + 20  # visibly brighter (8-bit levels)
    assert (out / "sample_dark_compare.png").is_file()


@pytest.mark.slow
def test_bundled_segmenter_loads():
    from sclle.models.segmentation import load_segmenter

    seg = load_segmenter()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert seg(x).shape == (1, 11, 40, 56)


@pytest.mark.slow
def test_bundled_segmenter_reproduces_its_recorded_camvid_test_miou():
    """The shipped scores are re-measured, not trusted: full CamVid test at the stored input scale."""
    from sclle.data.camvid import CamVid
    from sclle.evaluate.segmentation import evaluate_segmentation
    from sclle.models.segmentation import get_segmenter_entry, load_segmenter, segmenter_metadata

    root = shared_path("data", "camvid")
    meta = segmenter_metadata(get_segmenter_entry("camvid-deeplabv3plus-lite0").path)
    seg = load_segmenter()
    assert seg.input_scale == meta["input_scale"]
    scores = evaluate_segmentation(seg, CamVid(root, "test"), batch_size=4, device="cpu", progress=False)
    assert scores.n_images == 233
    # 0.5 point: other CPUs / oneDNN versions may flip the argmax of a few boundary pixels
    assert abs(scores.miou - meta["test"]["miou"]) < 5e-3

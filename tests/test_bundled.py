"""The bundled models: present, hash-consistent, usable offline, and the README quick start works."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from sclle.cli import app
from sclle.models import registry

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


def test_bundled_segmenter_loads():
    from sclle.models.segmentation import load_segmenter

    seg = load_segmenter()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert seg(x).shape == (1, 11, 40, 56)

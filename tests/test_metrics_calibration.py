"""Calibration of sclle.metrics against the official MATLAB values (shared/iqa_calibration).

The five TID2013 pairs (512x384) and their official values come from the metrics' original code as
collected by IQA-PyTorch. The CSV prints most values rounded (PSNR, PIQE to 2 decimals, SSIM and
entropy to 4), so each tolerance is that rounding plus a small margin for float arithmetic.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from sclle import metrics

from conftest import shared_path

NAMES = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _load(path) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="module")
def calib() -> dict:
    root = shared_path("iqa_calibration")
    with open(root / "official_values.csv", newline="") as fh:
        rows = {r[0]: r[1:] for r in csv.reader(fh)}
    assert rows["Method"] == NAMES
    official = {
        k: torch.tensor([float(v) for v in vals], dtype=torch.float64)
        for k, vals in rows.items()
        if k != "Method"
    }
    dist = torch.cat([_load(root / "dist" / n) for n in NAMES])
    ref = torch.cat([_load(root / "ref" / n) for n in NAMES])
    return {"official": official, "dist": dist, "ref": ref}


pytestmark = pytest.mark.shared


def test_niqe_matches_original_release(calib):
    """NIQE within 1% (relative) of the original release (row ``niqe``).

    Observed: 0.00-0.57%. The residual is not a modelling difference (I04 agrees to 1e-12) but float
    noise: in flat/clipped areas MSCN coefficients are 0 +- 1e-14 in MATLAB, whose signs feed the
    AGGD left/right fits; we set them to exactly 0, MATLAB keeps its rounding noise.
    """
    got = metrics.create("niqe")(calib["dist"])
    want = calib["official"]["niqe"]
    assert got.shape == (5,)
    rel = ((got - want) / want).abs()
    assert (rel < 0.01).all(), f"NIQE {got.tolist()} vs official {want.tolist()}"
    # MATLAB's later built-in niqe() (row ``niqe_matlab``) uses other pristine data: not what we implement.
    assert (got - calib["official"]["niqe_matlab"]).abs().max() > 1.0


def test_piqe_matches_matlab(calib):
    """PIQE within 0.02 absolute (official values printed to 2 decimals, i.e. +-0.005; observed <= 0.0046).

    A score is a ratio of block counts, so a single block classified differently would move it by
    ~0.5 on these images; 0.02 therefore checks the block tests exactly, not just approximately
    (e.g. taking the "surround" as the block minus columns 8-9 instead of MATLAB's 8 and 10 misses
    I04 by 0.27).
    """
    got = metrics.create("piqe")(calib["dist"])
    assert (got - calib["official"]["piqe"]).abs().max() < 0.02, got.tolist()


def test_entropy_matches_matlab(calib):
    """Entropy within 1e-4 bits (official printed to 4 decimals; observed <= 4e-5): rgb2gray uint8 histogram."""
    got = metrics.create("entropy")(calib["dist"])
    assert (got - calib["official"]["entropy"]).abs().max() < 1e-4, got.tolist()


def test_psnr_matches_official_on_rgb(calib):
    """PSNR within 0.01 dB (printed to 2 decimals; observed <= 0.004) with the default color='rgb'."""
    got = metrics.create("psnr")(calib["dist"], calib["ref"])
    assert (got - calib["official"]["psnr"]).abs().max() < 0.01, got.tolist()
    # The Y-channel convention is a different number on these pairs (documents why rgb is the default).
    y = metrics.psnr(calib["dist"], calib["ref"], color="y")
    assert (y - calib["official"]["psnr"]).abs().min() > 1.0


def test_ssim_matches_official_on_gray(calib):
    """SSIM within 2e-4 (printed to 4 decimals; observed <= 5e-5) with color='gray', no downsampling."""
    got = metrics.create("ssim")(calib["dist"], calib["ref"])
    assert (got - calib["official"]["ssim"]).abs().max() < 2e-4, got.tolist()
    for variant in ({"color": "y"}, {"downsample": True}):
        other = metrics.ssim(calib["dist"], calib["ref"], **variant)
        assert (other - calib["official"]["ssim"]).abs().max() > 0.02, variant

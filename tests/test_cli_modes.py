"""`sclle enhance --strength` and `--fast` change the pixels the way the README says, not only the file size.

README: ``--strength s`` multiplies the curve maps by ``s`` (0 is the input, intermediate values are gentler);
``--fast`` estimates the curves on a downscaled copy, "a small change of tone" whose fidelity BENCHMARKS.md
gives as PSNR against exact (35.9 dB on DICM + LIME for the released weights at their default scale, 1/2).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sclle.cli import app

from conftest import shared_path

runner = CliRunner()


def _enhance(src, out, model, *opts) -> np.ndarray:
    """Run ``sclle enhance`` on one file and return the output as float RGB in [0, 1]."""
    r = runner.invoke(
        app, ["enhance", str(src), "-o", str(out), "--model", str(model), "-q", "--device", "cpu", *opts]
    )
    assert r.exit_code == 0, r.output
    return np.asarray(Image.open(out / src.name).convert("RGB"), dtype=np.float64) / 255


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


@pytest.fixture
def dark_png(tmp_path):
    """A dark, textured 8-bit photo (blocks + gradient), so brightening and its strength are measurable."""
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.random((8, 12, 3)), np.ones((8, 8, 1)))
    ramp = np.linspace(0, 1, 96)[None, :, None]
    a = np.round((0.03 + 0.12 * blocks + 0.1 * ramp) * 255).astype(np.uint8)
    p = tmp_path / "dark.png"
    Image.fromarray(a).save(p)
    return p


def test_strength_zero_is_the_input_and_half_lies_between(dark_png, dce_weights, tmp_path):
    src = np.asarray(Image.open(dark_png), dtype=np.float64) / 255
    zero = _enhance(dark_png, tmp_path / "s0", dce_weights, "--strength", "0")
    half = _enhance(dark_png, tmp_path / "s05", dce_weights, "--strength", "0.5")
    full = _enhance(dark_png, tmp_path / "s1", dce_weights, "--strength", "1")
    default = _enhance(dark_png, tmp_path / "sd", dce_weights)
    assert np.array_equal(zero, src)  # bit-exact: no curve, no resampling, no colour shift
    assert np.array_equal(full, default)  # 1 is the default
    assert src.mean() + 0.02 < half.mean() < full.mean() - 0.02  # gentler, not a no-op and not the full curve
    # per pixel too: the curves brighten (r < 0), so a smaller multiple never brightens more (8-bit rounding)
    assert np.all(half <= full + 1 / 255) and np.all(half >= src - 1 / 255)


def test_fast_differs_from_exact_but_stays_close_on_a_smooth_image(tmp_path, dce_weights):
    """Tiny seeded net, smooth image: the fast path really runs (output differs) and stays close (48.8 dB)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, 90), np.linspace(0, 1, 132), indexing="ij")
    a = np.round((0.05 + 0.2 * np.stack([yy, xx, (yy + xx) / 2], -1)) * 255).astype(np.uint8)
    src = tmp_path / "smooth.png"
    Image.fromarray(a).save(src)
    exact = _enhance(src, tmp_path / "e", dce_weights)
    fast = _enhance(src, tmp_path / "f", dce_weights, "--fast-scale", "0.25")
    assert fast.shape == exact.shape
    assert not np.array_equal(fast, exact)  # the low-resolution path was taken
    assert fast.mean() > a.mean() / 255 + 0.05  # still the brightening curves
    assert _psnr(fast, exact) > 40


def test_fast_with_the_released_weights_meets_the_documented_fidelity(tmp_path):
    """Released SCL-LLE, default ``--fast`` scale (1/2), a real DICM photo: PSNR against exact near the
    35.9 dB BENCHMARKS.md reports as the DICM + LIME mean (this photo gives 37.3 dB; 1/4 would give 32.9)."""
    weights = shared_path("weights", "SCL-LLE.pth")
    photo = shared_path("data", "DICM", "01.jpg")
    src = tmp_path / "01.png"  # lossless output, so the comparison measures the enhancement only
    Image.open(photo).convert("RGB").save(src)
    args = ("scl-lle-official", "--weights", str(weights))
    exact = _enhance(src, tmp_path / "e", *args)
    fast = _enhance(src, tmp_path / "f", *args, "--fast")
    assert not np.array_equal(fast, exact)
    assert _psnr(fast, exact) > 34.0

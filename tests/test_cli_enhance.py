"""`sclle enhance` end to end: batch behaviour, bad inputs, never touching inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sclle.cli import app
from sclle.models.dce import DCENet

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = DCENet()
    with torch.no_grad():
        net.e_conv7.bias.fill_(-0.5)  # brightening curves
    p = tmp_path_factory.mktemp("w") / "dce.pth"
    torch.save(net.state_dict(), p)
    return p


def _dark(path, size=(40, 30), mode="RGB"):
    rng = np.random.default_rng(0)
    a = (rng.random((size[1], size[0], 3)) * 60).astype(np.uint8)
    im = Image.fromarray(a)
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path)
    return path


def _run(*args):
    return runner.invoke(app, ["enhance", *map(str, args)])


def test_batch_with_bad_items_writes_the_rest_and_fails(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    _dark(src / "a.png")
    _dark(src / "b.jpg")
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = (src / "b.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(good[: len(good) // 2])
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    r = _run(src, tmp_path / "missing.png", "-o", out, "--model", weights, "-q")
    assert r.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert "2 enhanced" in r.output and "3 failed" in r.output
    assert "corrupt.jpg" in r.output and "truncated.jpg" in r.output and "missing.png" in r.output
    assert "Traceback" not in r.output
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched
    bright = np.asarray(Image.open(out / "a.png"), dtype=float).mean()
    assert bright > np.asarray(Image.open(src / "a.png"), dtype=float).mean()


def test_existing_outputs_kept_unless_overwrite(tmp_path, weights):
    _dark(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    r = _run(tmp_path / "a.png", "-o", out, "--model", weights, "-q")
    assert r.exit_code == 0 and (out / "a.png").read_bytes() == b"keep me"
    assert "skipped" in r.output
    r = _run(tmp_path / "a.png", "-o", out, "--model", weights, "-q", "--overwrite")
    assert r.exit_code == 0 and (out / "a.png").read_bytes() != b"keep me"


def test_output_into_input_folder_never_overwrites_input(tmp_path, weights):
    p = _dark(tmp_path / "a.png")
    data = p.read_bytes()
    r = _run(p, "-o", tmp_path, "--model", weights, "-q", "--overwrite")
    assert r.exit_code == 1 and p.read_bytes() == data
    assert "\n" not in r.output.strip().splitlines()[0]


def test_folder_without_images_and_unwritable_output(tmp_path, weights):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run(empty, "-o", tmp_path / "o", "--model", weights, "-q")
    assert r.exit_code == 1 and "no images" in r.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _dark(tmp_path / "a.png")
    r = _run(tmp_path / "a.png", "-o", blocker / "sub", "--model", weights, "-q")
    assert r.exit_code == 1 and "a.png" in r.output and "Traceback" not in r.output


def test_compare_format_quality_recursive(tmp_path, weights):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    _dark(tmp_path / "in" / "x.png")
    _dark(tmp_path / "in" / "sub" / "y.png")
    out = tmp_path / "out"
    r = _run(tmp_path / "in", "-o", out, "--model", weights, "-q", "--recursive", "--format", "jpg",
             "--quality", "80", "--compare")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (out / "x.jpg").is_file() and (out / "sub" / "y.jpg").is_file()
    cmp = Image.open(out / "x_compare.png")
    assert cmp.width >= 2 * 40


def test_fast_and_tile_keep_size(tmp_path, weights):
    _dark(tmp_path / "a.png", size=(101, 67))
    for opts in (["--fast"], ["--fast-scale", "0.25"], ["--tile", "32"], ["--strength", "0.5"]):
        out = tmp_path / ("o" + "".join(opts))
        r = _run(tmp_path / "a.png", "-o", out, "--model", weights, "-q", *opts)
        assert r.exit_code == 0, r.output
        assert Image.open(out / "a.png").size == (101, 67)


def test_weights_hash_mismatch_is_one_line_error(tmp_path, weights):
    _dark(tmp_path / "a.png")
    r = _run(tmp_path / "a.png", "-o", tmp_path / "o", "--model", "scl-lle-official", "--weights", weights)
    assert r.exit_code != 0
    assert "sha256 mismatch" in str(r.exception) or "sha256 mismatch" in r.output


def test_console_script_prints_one_line_error(tmp_path, weights):
    import subprocess
    import sys

    _dark(tmp_path / "a.png")
    cmd = [sys.executable, "-c", "from sclle.cli import main; main()", "enhance", str(tmp_path / "a.png"),
           "-o", str(tmp_path / "o"), "--model", "scl-lle-official", "--weights", str(weights)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "sha256 mismatch" in lines[0]
    assert str(weights) in lines[0]


def test_recursive_rerun_ignores_outputs_inside_input_folder(tmp_path, weights):
    _dark(tmp_path / "a.png")
    out = tmp_path / "enhanced"
    for _ in range(2):
        r = _run(tmp_path, "-o", out, "--model", weights, "-q", "--recursive")
        assert r.exit_code == 0, r.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png"]


def test_conversion_notes_reported_once(tmp_path, weights):
    rgba = (np.random.default_rng(0).random((20, 20, 4)) * 60).astype(np.uint8)
    for name in ("x.png", "y.png"):
        Image.fromarray(rgba, "RGBA").save(tmp_path / name)
    r = _run(
        tmp_path / "x.png", tmp_path / "y.png", "-o", tmp_path / "o", "--model", weights, "-q", "-f", "jpg"
    )
    assert r.exit_code == 0
    assert r.output.count("alpha channel dropped") == 1


def test_colliding_output_names_are_kept_apart(tmp_path, weights):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _dark(tmp_path / "a" / "10.jpg")
    _dark(tmp_path / "b" / "10.bmp")
    out = tmp_path / "out"
    r = _run(tmp_path / "a", tmp_path / "b", "-o", out, "--model", weights, "-q", "--format", "png")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["10-b.png", "10.png"]
    assert "collided" in r.output

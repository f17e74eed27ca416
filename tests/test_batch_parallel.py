"""Batches of small images enhanced several at once on a CPU: same files, same lines, bounded, restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sclle.enhancement import batch
from sclle.enhancement.api import build_engine
from sclle.enhancement.batch import enhance_files, parallel_images


def _inputs(folder):
    """A mixed folder: RGB PNG and JPEG, gray, RGBA, 16-bit gray, two sizes, and two bad files."""
    folder.mkdir()
    rng = np.random.default_rng(0)

    def dark(h, w, c=3):
        return (rng.random((h, w, c)) * 70).astype(np.uint8)

    Image.fromarray(dark(30, 40)).save(folder / "a.png")
    Image.fromarray(dark(33, 21)).save(folder / "b.jpg", quality=90)
    Image.fromarray(dark(24, 24)[..., 0]).save(folder / "c_gray.png")
    Image.fromarray(np.dstack([dark(20, 28), np.full((20, 28, 1), 200, np.uint8)])).save(
        folder / "d_rgba.png"
    )
    Image.fromarray((rng.random((18, 26)) * 9000).astype(np.uint16)).save(folder / "e_16.png")
    Image.fromarray(dark(45, 17)).save(folder / "f.bmp")
    (folder / "g_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (folder / "h_empty.png").write_bytes(b"")
    return folder


@pytest.fixture
def engine(dce_weights):
    return build_engine(str(dce_weights), device="cpu")


def test_parallel_batch_writes_the_same_files_and_lines_as_one_at_a_time(tmp_path, engine):
    src = _inputs(tmp_path / "in")
    one = enhance_files([src], tmp_path / "one", engine, progress=False, parallel=1, compare=True)
    two = enhance_files([src], tmp_path / "two", engine, progress=False, parallel=2, compare=True)
    assert one.enhanced == two.enhanced == 6
    assert len(one.failed) == 2 and "g_corrupt.jpg" in one.failed[0] and "h_empty.png" in one.failed[1]
    assert two.failed == [ln for ln in one.failed]  # same reasons, same (job) order
    assert two.notes == one.notes and two.skipped == one.skipped == []
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 12
    for name in names:  # byte-identical files: the schedule never changes a result
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert [p.name for p in one.written] == [p.name for p in two.written]


def test_parallel_batch_uses_one_torch_thread_per_image_and_restores_the_count(tmp_path, engine, monkeypatch):
    src = _inputs(tmp_path / "in")
    seen: list[int] = []
    full = engine._enhance_full

    def spy(x, strength):
        seen.append(torch.get_num_threads())
        return full(x, strength)

    monkeypatch.setattr(engine, "_enhance_full", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        res = enhance_files([src], tmp_path / "o", engine, progress=False)  # automatic: 2 at once
        assert res.enhanced == 6 and seen == [1] * 6
        assert torch.get_num_threads() == 2
        seen.clear()
        enhance_files([src], tmp_path / "p", engine, progress=False, parallel=1)
        assert seen == [2] * 6  # one image at a time keeps every thread on it
    finally:
        torch.set_num_threads(before)


def test_a_failing_computation_is_one_line_and_the_rest_are_written(tmp_path, engine, monkeypatch):
    src = _inputs(tmp_path / "in")
    full = engine._enhance_full

    def flaky(x, strength):
        if x.shape[-2:] == (33, 21):  # b.jpg
            raise RuntimeError("out of memory (simulated)\nsecond line")
        return full(x, strength)

    monkeypatch.setattr(engine, "_enhance_full", flaky)
    res = enhance_files([src], tmp_path / "o", engine, progress=False, parallel=2)
    assert res.enhanced == 5 and len(res.failed) == 3
    line = next(ln for ln in res.failed if "b.jpg" in ln)
    assert "out of memory (simulated)" in line and "--tile 512" in line and "second line" not in line
    assert not (tmp_path / "o" / "b.jpg").exists()


def test_when_images_run_in_parallel(tmp_path, engine, monkeypatch):
    small = tmp_path / "s.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(small)
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(big)
    jobs = [(small, tmp_path / "x.png")] * 3
    assert parallel_images(jobs, engine, threads=2) == 2
    assert parallel_images(jobs, engine, threads=4) == 3  # never more threads than images
    assert parallel_images(jobs, engine, threads=1) == 1
    assert parallel_images(jobs[:1], engine, threads=2) == 1
    assert parallel_images(jobs, lambda x: x, threads=2) == 1  # a plain callable may not be thread-safe
    monkeypatch.setattr(batch, "PARALLEL_MAX_PIXELS", 40 * 50 - 1)
    assert (
        parallel_images([*jobs, (big, tmp_path / "y.png")], engine, threads=2) == 1
    )  # memory: one at a time
    assert parallel_images(jobs, engine, threads=2) == 2
    monkeypatch.setattr(engine, "device", torch.device("meta"))
    assert parallel_images(jobs, engine, threads=2) == 1  # not a CPU


def test_parallel_must_be_positive(tmp_path, engine):
    with pytest.raises(ValueError, match="parallel"):
        enhance_files([tmp_path], tmp_path / "o", engine, parallel=0)


def test_cli_parallel_option(tmp_path, dce_weights):
    from typer.testing import CliRunner

    from sclle.cli import app

    src = _inputs(tmp_path / "in")
    outs = {}
    for n in ("1", "2"):
        r = CliRunner().invoke(
            app,
            [
                "enhance",
                str(src),
                "-o",
                str(tmp_path / n),
                "--model",
                str(dce_weights),
                "-q",
                "--parallel",
                n,
            ],
        )
        assert r.exit_code == 1 and "6 enhanced" in r.output and "2 failed" in r.output, r.output
        outs[n] = {p.name: p.read_bytes() for p in (tmp_path / n).iterdir()}
    assert outs["1"] == outs["2"] and len(outs["1"]) == 6
    r = CliRunner().invoke(app, ["enhance", str(src), "-o", str(tmp_path / "z"), "--parallel", "0"])
    assert r.exit_code == 2 and "--parallel" in r.output

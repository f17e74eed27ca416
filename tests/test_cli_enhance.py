"""`sclle enhance` end to end: batch behaviour, bad inputs, never touching inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sclle.cli import app

from conftest import png_declaring

runner = CliRunner()


@pytest.fixture
def weights(dce_weights):
    return dce_weights


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


@pytest.mark.slow
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


# ------------------------------------------------------------------------------------------- hardening (issue 14)


def _tree(root):
    """Every path under ``root`` with its bytes (folders as None): detects any write, anywhere."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    }


def _no_traceback(r):
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)


def test_symlink_loop_is_one_failed_line_and_the_batch_goes_on(tmp_path, weights):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _dark(src / "a.png")
    _dark(src / "sub" / "b.png")
    (src / "loop.jpg").symlink_to("loop.jpg")
    for flags in (["-r"], []):
        out = tmp_path / f"out{len(flags)}"
        r = _run(src, "-o", out, "--model", weights, "-q", *flags)
        _no_traceback(r)
        assert r.exit_code == 1
        failed = [ln for ln in r.output.splitlines() if ln.startswith("failed:")]
        assert len(failed) == 1 and "loop.jpg" in failed[0] and "link" in failed[0]
        expected = ["a.png", "sub/b.png"] if flags else ["a.png"]
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == expected


def _three_same_names(tmp_path):
    for i, top in enumerate("xyz"):
        (tmp_path / top / "a").mkdir(parents=True)
        a = np.full((12, 16, 3), 20 + 30 * i, dtype=np.uint8)  # distinct content per input
        Image.fromarray(a).save(tmp_path / top / "a" / "10.png")
    return [tmp_path / t for t in "xyz"]


def test_three_inputs_with_one_name_get_three_outputs(tmp_path, weights):
    dirs = _three_same_names(tmp_path)
    out = tmp_path / "out"
    r = _run(*dirs, "-r", "-o", out, "--model", weights, "-q")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (out / "a").iterdir())
    assert len(names) == 3 and "10.png" in names, names
    assert "3 enhanced" in r.output and "exists" not in r.output
    means = sorted(np.asarray(Image.open(out / "a" / n), dtype=float).mean() for n in names)
    assert means[0] < means[1] < means[2]  # three different results, none overwritten by another
    first = _tree(out)
    r = _run(*dirs, "-r", "-o", out, "--model", weights, "-q", "--overwrite")  # same names on a rerun
    assert r.exit_code == 0 and "exists" not in r.output and _tree(out).keys() == first.keys()
    assert all(_tree(out)[k] == v for k, v in first.items())
    r = _run(*dirs, "-r", "-o", out, "--model", weights, "-q")  # without --overwrite: all three kept
    assert r.exit_code == 0 and "0 enhanced, 3 skipped" in r.output


def test_compare_sheet_never_takes_another_inputs_name(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    _dark(src / "x.png", size=(40, 30))
    _dark(src / "x_compare.png", size=(20, 10))
    out = tmp_path / "out"
    r = _run(src, "-o", out, "--model", weights, "-q", "--compare")
    assert r.exit_code == 0, r.output
    files = {p.name: Image.open(p).size for p in out.iterdir()}
    assert len(files) == 4, files  # two results and two sheets
    enhanced = sorted(size for name, size in files.items() if size in ((40, 30), (20, 10)))
    assert enhanced == [(20, 10), (40, 30)]
    assert files["x.png"] == (40, 30) and files["x_compare.png"][0] > 80  # x's sheet


@pytest.mark.parametrize("suffix", ["/../../escape", "..", "a/b", "a\\b", "_ok\n"])
def test_suffix_that_could_leave_the_output_folder_is_a_usage_error(tmp_path, weights, suffix):
    _dark(tmp_path / "a.png")
    before = _tree(tmp_path)
    r = _run(
        tmp_path / "a.png", "-o", tmp_path / "deep" / "out", "--model", weights, "-q", "--suffix", suffix
    )
    assert r.exit_code == 2 and "suffix" in r.output.lower()
    assert _tree(tmp_path) == before  # nothing written anywhere


def test_output_link_leading_outside_is_refused(tmp_path, weights):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    _dark(tmp_path / "in" / "sub" / "a.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)
    r = _run(tmp_path / "in", "-r", "-o", out, "--model", weights, "-q")
    assert r.exit_code == 1 and "outside the output folder" in r.output
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "opts",
    [["--threads", "100000"], ["--threads", "-2"], ["--threads", "0"], ["--fast-scale", "0"],
     ["--fast-scale", "1.5"], ["--fast-scale", "nan"], ["--strength", "nan"], ["--tile", "3"],
     ["--format", "xyz"], ["--quality", "0"], ["--max-pixels", "0"]],
)  # fmt: skip
def test_out_of_range_options_are_usage_errors(tmp_path, weights, opts):
    _dark(tmp_path / "a.png")
    r = _run(tmp_path / "a.png", "-o", tmp_path / "o", "--model", weights, "-q", *opts)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and opts[0] in r.output
    assert not (tmp_path / "o").exists()


def test_threads_are_used_and_restored(tmp_path, weights):
    import torch

    _dark(tmp_path / "a.png")
    before = torch.get_num_threads()
    r = _run(tmp_path / "a.png", "-o", tmp_path / "o", "--model", weights, "-q", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert torch.get_num_threads() == before


def test_pixel_limit_names_the_file_and_the_option(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bomb.png").write_bytes(png_declaring(12000, 10000))
    _dark(src / "small.png", size=(20, 20))
    _dark(src / "big.png", size=(40, 30))
    out = tmp_path / "out"
    r = _run(src, "-o", out, "--model", weights, "-q", "--max-pixels", "1000")
    assert r.exit_code == 1
    failed = [ln for ln in r.output.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 2 and all("--max-pixels" in ln for ln in failed)
    assert any("big.png" in ln and "40x30" in ln for ln in failed)
    assert any("bomb.png" in ln and "12000x10000" in ln for ln in failed)
    assert sorted(p.name for p in out.iterdir()) == ["small.png"]
    r = _run(src / "bomb.png", "-o", out, "--model", weights, "-q")  # default limit: 100 Mpx
    assert r.exit_code == 1 and "120.0 megapixels" in r.output


def test_output_folder_is_a_file_is_a_usage_error(tmp_path, weights):
    _dark(tmp_path / "a.png")
    (tmp_path / "report").write_text("not a folder")
    r = _run(tmp_path / "a.png", "-o", tmp_path / "report", "--model", weights, "-q")
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = runner.invoke(app, ["evaluate", "-m", "none", "-d", str(tmp_path), "-o", str(tmp_path / "report")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert (tmp_path / "report").read_text() == "not a folder"


def test_output_folder_equal_to_the_input_folder(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    _dark(src / "a.png")
    before = _tree(src)
    r = _run(src, "-o", src, "--model", weights, "-q")
    assert r.exit_code == 1 and "would replace an input" in r.output and "--suffix" in r.output
    assert "--overwrite" not in r.output  # it would be refused too: not offered
    assert _tree(src) == before
    for _ in range(2):  # with a suffix it works, and a rerun does not enhance its own outputs
        r = _run(src, "-o", src, "--model", weights, "-q", "--suffix", "_enh", "--compare")
        assert r.exit_code == 0, r.output
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_enh.png", "a_enh_compare.png"]
    assert (src / "a.png").read_bytes() == before["a.png"]


def test_animated_and_multipage_inputs_are_refused_not_cut(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (10, 40, 70)]
    frames[0].save(src / "anim.png", save_all=True, append_images=frames[1:])
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:])
    _dark(src / "still.png")
    r = _run(src, "-o", tmp_path / "out", "--model", weights, "-q")
    assert r.exit_code == 1
    failed = [ln for ln in r.output.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 2 and all("3 frames" in ln for ln in failed)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["still.png"]


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_concurrent_run_is_never_overwritten(tmp_path, weights, parallel):
    """The other run writes our output between our check and our write: its file is kept, we skip."""
    from sclle.enhancement.api import build_engine
    from sclle.enhancement.batch import enhance_files

    _dark(tmp_path / "a.png")
    _dark(tmp_path / "b.png")
    out = tmp_path / "out"
    engine = build_engine(str(weights))

    def racing_engine(x):
        out.mkdir(exist_ok=True)
        (out / "a.png").write_bytes(b"other run")
        return engine(x)

    res = enhance_files(
        [tmp_path / "a.png", tmp_path / "b.png"], out, racing_engine, progress=False, parallel=parallel
    )
    assert (out / "a.png").read_bytes() == b"other run"
    assert res.enhanced == 1 and not res.failed
    assert len(res.skipped) == 1 and "a.png" in res.skipped[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]  # no temporary file left


@pytest.mark.slow
def test_version_and_python_dash_m(tmp_path):
    import subprocess
    import sys

    import sclle

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"sclle {sclle.__version__}"
    p = subprocess.run([sys.executable, "-m", "sclle", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"sclle {sclle.__version__}"

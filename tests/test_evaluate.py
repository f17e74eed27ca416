"""Tests of ``sclle evaluate``: datasets, the cached runner, the report files and the CLI."""

from __future__ import annotations

import csv
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sclle.errors import SclleError
from sclle.evaluate.datasets import DatasetSpec, SyntheticProtocol, parse_dataset
from sclle.evaluate.report import fmt, markdown_table
from sclle.evaluate.runner import MetricSpec, brightness, evaluate

METRICS = ["entropy", "brightness", "psnr", "ssim"]  # fast ones; NIQE needs >= 192 px images


def _image(rng: np.random.Generator, w: int = 64, h: int = 48, scale: float = 1.0) -> np.ndarray:
    """A smooth random picture (gradients + blobs), uint8 HxWx3."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + p) * np.cos(4 * yy - p) for p in rng.uniform(0, 3, 3)], axis=-1)
    img = 0.5 + 0.4 * base + 0.05 * rng.standard_normal((h, w, 3))
    return (np.clip(img * scale, 0, 1) * 255).astype(np.uint8)


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    d = tmp_path / "dark"
    for i in range(3):
        _save(d / f"img{i}.png", _image(rng, scale=0.3))
    return d


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    d = tmp_path / "pairs"
    for i in range(2):
        high = _image(rng)
        _save(d / "high" / f"{i}.png", high)
        _save(d / "low" / f"{i}.jpg", (high * 0.25).astype(np.uint8))
    return d


def _cli(*args: str):
    from sclle.cli import app

    return CliRunner().invoke(app, ["evaluate", *args])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------- datasets


def test_parse_dataset_kinds(folder: Path, pairs: Path) -> None:
    assert parse_dataset(folder).kind == "folder"
    assert parse_dataset(folder).name == "dark"
    p = parse_dataset(f"lol={pairs}")
    assert (p.kind, p.name, p.has_reference) == ("paired", "lol", True)
    assert [(i.input_path.name, i.ref_path.name) for i in p.items()] == [
        ("0.jpg", "0.png"),
        ("1.jpg", "1.png"),
    ]
    s = parse_dataset(f"synthetic:{folder}?gamma=3&exposure=0.4&seed=7")
    assert s.kind == "synthetic" and s.synthetic == SyntheticProtocol(gamma=3, exposure=0.4, seed=7)
    assert "gamma=3" in s.protocol and "seed=7" in s.protocol
    with pytest.raises(SclleError, match="unknown synthetic parameter"):
        parse_dataset(f"synthetic:{folder}?gama=3")


def test_synthetic_pairs_are_seeded_and_darker(folder: Path) -> None:
    spec = parse_dataset(f"synthetic:{folder}?gamma=2.5&exposure=0.5&peak=200&seed=3")
    item = spec.items()[1]
    x1, ref = spec.load(item)
    x2, _ = spec.load(item)
    assert torch.equal(x1, x2)  # same seed and index -> same noise
    assert ref is not None and x1.shape == ref.shape
    assert brightness(x1).item() < 0.6 * brightness(ref).item()
    other = parse_dataset(f"synthetic:{folder}?gamma=2.5&exposure=0.5&peak=200&seed=4")
    assert not torch.equal(other.load(item)[0], x1)
    assert spec.content_key(item) != other.content_key(item) or spec.protocol != other.protocol


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SclleError, match="no images found"):
        evaluate(["input"], [tmp_path / "empty"], metrics=["brightness"], out_dir=tmp_path / "r")
    res = _cli("-m", "input", "-d", str(tmp_path / "empty"), "--out", str(tmp_path / "r2"), "-q")
    assert res.exit_code != 0
    assert isinstance(res.exception, SclleError) and "no images found" in str(res.exception)
    assert "\n" not in str(res.exception)


def test_unmatched_pairs_are_a_clear_error(pairs: Path) -> None:
    _save(pairs / "low" / "extra.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SclleError, match=r"unmatched files: 1 in low/ .*extra"):
        parse_dataset(pairs).items()


# --------------------------------------------------------------------------------------- runner + CLI


@pytest.mark.slow
def test_cli_writes_every_report_file(tmp_path: Path, folder: Path, pairs: Path) -> None:
    out = tmp_path / "report"
    res = _cli(
        "-m", "input,gamma", "-d", str(folder), "-d", f"lol={pairs}", "--synthetic", f"syn={folder}",
        "--metrics", ",".join(METRICS), "--out", str(out), "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("dark", "lol", "syn"):
        for f in ("metrics.csv", "metrics.md", "per_image.csv", "contact_sheet.png", "histograms.png"):
            assert (out / name / f).is_file(), f"{name}/{f} missing"
        assert f"({name}/contact_sheet.png)" in (out / "index.md").read_text()
    for f in ("index.md", "average.csv", "average.md", "results.json"):
        assert (out / f).is_file()
    rows = _read_csv(out / "dark" / "metrics.csv")
    assert [r["method"] for r in rows] == ["input", "gamma"]
    assert "psnr" not in rows[0]  # no reference in a plain folder
    assert {r["n_images"] for r in rows} == {"3"}
    dark = {r["method"]: float(r["brightness"]) for r in rows}
    assert dark["gamma"] > dark["input"]  # the gamma baseline brightens
    lol = _read_csv(out / "lol" / "metrics.csv")
    assert [r["method"] for r in lol] == ["input", "gamma", "reference"]
    assert all(math.isfinite(float(r["psnr"])) for r in lol[:2])
    md = (out / "lol" / "metrics.md").read_text()
    assert "psnr ↑" in md and "ssim ↑" in md and "| `gamma` |" in md
    # contact sheet: 3 images -> 3 rows; lol/syn carry an extra reference column
    w_dark, h_dark = Image.open(out / "dark" / "contact_sheet.png").size
    w_syn, h_syn = Image.open(out / "syn" / "contact_sheet.png").size
    assert w_syn > w_dark and h_syn == h_dark
    assert len(_read_csv(out / "syn" / "per_image.csv")) == 3 * (2 + 1)  # + the reference row
    syn = {r["method"]: r for r in _read_csv(out / "syn" / "metrics.csv")}
    assert list(syn) == ["input", "gamma", "reference"]
    assert float(syn["reference"]["brightness"]) > float(syn["input"]["brightness"])  # the target is brighter
    assert math.isnan(float(syn["reference"]["psnr"]))  # no reference for the reference


@pytest.mark.slow
def test_second_run_is_served_from_cache(tmp_path: Path, folder: Path, pairs: Path, monkeypatch) -> None:
    methods = importlib.import_module("sclle.enhancement.methods")

    calls = {"n": 0}
    real = methods.get_method

    def counting(spec: str, **kw):
        m = real(spec, **kw)
        fn = m.fn

        def wrapped(x):
            calls["n"] += 1
            return fn(x)

        m.fn = wrapped
        return m

    monkeypatch.setattr(methods, "get_method", counting)
    kw = dict(out_dir=tmp_path / "r", progress=False)
    first = evaluate(["input", "gamma"], [folder, pairs], metrics=METRICS, **kw)
    n_first = calls["n"]
    assert n_first == 2 * (3 + 2) and first.stats.computed > 0 and first.stats.cached == 0
    (tmp_path / "r" / "dark" / "contact_sheet.png").unlink()

    second = evaluate(["input", "gamma"], [folder, pairs], metrics=METRICS, **kw)
    assert calls["n"] == n_first  # no method ran again
    assert second.stats.computed == 0 and second.stats.enhanced == 0
    assert second.stats.cached == first.stats.computed
    assert second.table("pairs") == first.table("pairs")
    assert (tmp_path / "r" / "dark" / "contact_sheet.png").is_file()  # report rebuilt from the cache

    # A changed image is recomputed, and only it.
    _save(folder / "img1.png", _image(np.random.default_rng(5), scale=0.2))
    third = evaluate(["input", "gamma"], [folder, pairs], metrics=METRICS, **kw)
    assert third.stats.enhanced == 2 and third.stats.computed == 2 * 2  # 2 methods x 2 NR metrics

    # No cache: everything again.
    fourth = evaluate(["input"], [folder], metrics=["brightness"], use_cache=False, **kw)
    assert fourth.stats.cached == 0 and fourth.stats.computed == 3


def test_corrupt_image_is_skipped_with_warning(tmp_path: Path, folder: Path) -> None:
    (folder / "broken.png").write_bytes(b"this is not a png")
    out = tmp_path / "r"
    res = _cli(
        "-m", "input", "-m", "gamma", "-d", str(folder), "--metrics", "brightness", "--out", str(out), "-q"
    )
    assert res.exit_code == 1
    warnings = [line for line in res.output.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 1 and "broken" in warnings[0]
    assert {r["n_images"] for r in _read_csv(out / "dark" / "metrics.csv")} == {"3"}
    assert "broken" in (out / "index.md").read_text()


def test_save_images(tmp_path: Path, folder: Path) -> None:
    res = evaluate(
        ["gamma"], [folder], metrics=["brightness"], out_dir=tmp_path / "r", save_images=True, progress=False
    )
    saved = sorted((tmp_path / "r" / "images" / "dark" / "gamma").glob("*.png"))
    assert [p.stem for p in saved] == ["img0", "img1", "img2"]
    mean = np.asarray(Image.open(saved[0]), dtype=np.float64).mean() / 255
    assert abs(mean - res.scores["dark"]["gamma"]["img0"]["brightness"]) < 0.02


def test_unknown_metric_and_method(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(SclleError, match="unknown metric"):
        evaluate(["input"], [folder], metrics=["nope"], out_dir=tmp_path / "r")
    with pytest.raises(SclleError, match="unknown method"):
        evaluate(["nope-method"], [folder], metrics=["brightness"], out_dir=tmp_path / "r")


# ---------------------------------------------------------------------------------------------- report


def test_markdown_table_marks_best_but_not_the_input() -> None:
    metrics = [
        MetricSpec("niqe", "nr", True),
        MetricSpec("psnr", "fr", False),
        MetricSpec("brightness", "nr", None),
    ]
    table = {
        "input": {"niqe": 1.0, "psnr": 99.0, "brightness": 0.1},
        "a": {"niqe": 4.0, "psnr": 20.0, "brightness": 0.5},
        "b": {"niqe": 3.0, "psnr": 21.0, "brightness": 0.6},
    }
    md = markdown_table(table, metrics)
    assert "niqe ↓" in md and "psnr ↑" in md and "| brightness |" in md
    row = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| `")}
    assert "**3.000**" in row["`b`"] and "**21.00**" in row["`b`"]
    assert "**" not in row["`input`"] and "**" not in row["`a`"]
    assert fmt(float("nan")) == "–" and fmt(0.12345) == "0.1235"


def test_dataset_spec_object_is_accepted(tmp_path: Path, folder: Path) -> None:
    spec = DatasetSpec("mine", folder, "folder")
    res = evaluate(["input"], [spec], metrics=["brightness"], out_dir=tmp_path / "r", limit=2, progress=False)
    assert res.count("mine", "input") == 2
    assert (tmp_path / "r" / "mine" / "metrics.md").is_file()


def test_scores_match_direct_metric_calls(tmp_path: Path, folder: Path, pairs: Path) -> None:
    from sclle.imageio import read_image, to_tensor
    from sclle.metrics import create

    syn = f"synthetic:{folder}?gamma=2&exposure=0.6&seed=1"
    res = evaluate(
        ["input"], [pairs, syn], metrics=["psnr", "entropy"], out_dir=tmp_path / "r", progress=False
    )
    psnr, ent = create("psnr"), create("entropy")
    low = to_tensor(read_image(pairs / "low" / "1.jpg").rgb)
    high = to_tensor(read_image(pairs / "high" / "1.png").rgb)
    got = res.scores["pairs"]["input"]["1"]
    assert got["psnr"] == pytest.approx(psnr(low, high).item())
    assert got["entropy"] == pytest.approx(ent(low).item())
    spec = parse_dataset(syn)
    x, ref = spec.load(spec.items()[2])
    assert res.scores[spec.name]["input"]["img2"]["psnr"] == pytest.approx(psnr(x, ref).item())


# ------------------------------------------------------------------------------------- cache format + layering

#: The cache schema as written before the runner was split (``sclle benchmark`` caches of that code
#: must still be read: a scorecard's .cache holds hours of scores).
_OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    method TEXT, image TEXT, protocol TEXT, metric TEXT, value REAL,
    PRIMARY KEY (method, image, protocol, metric));
CREATE TABLE IF NOT EXISTS blobs (
    kind TEXT, method TEXT, image TEXT, protocol TEXT, data BLOB,
    PRIMARY KEY (kind, method, image, protocol));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


def test_cache_written_in_the_old_format_is_read(tmp_path: Path, folder: Path, pairs: Path) -> None:
    import sqlite3

    kw = dict(metrics=METRICS, progress=False, write_report=False)
    first = evaluate(["input", "gamma"], [folder, pairs], out_dir=tmp_path / "a", **kw)
    assert (tmp_path / "a" / ".cache" / "results.sqlite").is_file()  # the default location is unchanged
    new = sqlite3.connect(tmp_path / "a" / ".cache" / "results.sqlite")
    scores = new.execute("SELECT method, image, protocol, metric, value FROM scores").fetchall()
    blobs = new.execute("SELECT kind, method, image, protocol, data FROM blobs").fetchall()
    new.close()
    # The same rows, written with the old code's statements into a fresh file.
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    old = sqlite3.connect(old_dir / "results.sqlite")
    old.executescript(_OLD_SCHEMA)
    old.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)", scores)
    old.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)", blobs)
    old.execute("INSERT OR REPLACE INTO meta VALUES ('version', '1')")
    old.commit()
    old.close()

    second = evaluate(["input", "gamma"], [folder, pairs], out_dir=tmp_path / "b", cache_dir=old_dir, **kw)
    assert second.stats.computed == 0 and second.stats.enhanced == 0
    assert second.stats.cached == first.stats.computed > 0
    assert second.table("pairs") == first.table("pairs")


@pytest.mark.slow
def test_report_does_not_import_the_runner() -> None:
    """The runner -> report cycle stays broken: rendering a report never loads the evaluation loop."""
    import ast
    import subprocess
    import sys

    code = (
        "import sys, sclle.evaluate.report as r; "
        "assert r.write_report and r.markdown_table; "
        "print(sorted(m for m in sys.modules if m.startswith('sclle.evaluate.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = ast.literal_eval(out)
    assert "sclle.evaluate.results" in loaded  # the check can see what report pulls in
    assert "sclle.evaluate.runner" not in loaded and "sclle.evaluate.cache" not in loaded


def test_dataset_limit_spreads_over_the_sorted_list(tmp_path):
    import numpy as np
    from PIL import Image

    from sclle.evaluate.datasets import parse_dataset

    for i in range(10):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
    ds = parse_dataset(f"d={tmp_path}")
    picked = ds.items(3)
    assert [it.key for it in picked] == ["0", "3", "6"]  # evenly spaced, not the first three
    assert [it.index for it in picked] == [0, 3, 6]  # seeds stay those of the full sorted list
    assert [it.key for it in ds.items(None)] == [str(i) for i in range(10)]

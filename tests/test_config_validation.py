"""Training configs are validated when loaded: one line naming the key, before any data is read."""

from __future__ import annotations

import pytest

from sclle.errors import SclleError
from sclle.train.config import TrainConfig, load_config


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.lr=-1e-4", "optim.lr"),
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=nan", "optim.lr"),
        ("optim.lr=.inf", "optim.lr"),
        ("schedule.steps=-5", "schedule.steps"),
        ("schedule.steps=0", "schedule.steps"),
        ("schedule.batch=0", "schedule.batch"),
        ("schedule.crop=8", "schedule.crop"),
        ("schedule.n_pos=0", "schedule.n_pos"),
        ("loss.weights.color=-1", "loss.weights.color"),
        ("loss.weights.smoothness=nan", "loss.weights.smoothness"),
        ("loss.gram_margin=-0.1", "loss.gram_margin"),
        ("optim.betas=[0.9, 1.0]", "optim.betas"),
        ("optim.weight_decay=-1", "optim.weight_decay"),
        ("optim.grad_clip=-0.1", "optim.grad_clip"),
        ("optim.amp=fp8", "optim.amp"),
        ("data.gamma_range=[4, 1.5]", "data.gamma_range"),
        ("data.exposure_range=[0, 1]", "data.exposure_range"),
        ("data.extra_fraction=1.5", "data.extra_fraction"),
        ("data.preload=gpu", "data.preload"),
        ("data.dataset=voc", "data.dataset"),
        ("model.init_std=0", "model.init_std"),
        ("seed=-1", "seed"),
        ("logging.log_every=0", "logging.log_every"),
        ("logging.ckpt_every=-1", "logging.ckpt_every"),
        ("logging.keep_ckpts=1", "logging.keep_ckpts"),
        ("logging.name=../../escape", "logging.name"),
    ],
)
def test_invalid_values_are_refused_naming_the_key(override, key):
    with pytest.raises(SclleError) as exc:
        load_config(None, [override])
    msg = str(exc.value)
    assert key in msg and "\n" not in msg


def test_invalid_value_in_a_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  lr: .nan\nschedule:\n  steps: 10\n")
    with pytest.raises(SclleError, match="optim.lr: must be a finite number"):
        load_config(p)


def test_defaults_and_edge_values_are_accepted():
    cfg = load_config(
        None,
        [
            "schedule.steps=1",
            "schedule.crop=16",
            "loss.weights.color=0",
            "optim.grad_clip=null",
            "optim.weight_decay=0",
            "logging.ckpt_every=0",
            "data.extra_fraction=1",
        ],
    )
    assert cfg.schedule.steps == 1 and cfg.optim.grad_clip is None
    assert TrainConfig.from_dict(TrainConfig().to_dict()).to_dict() == TrainConfig().to_dict()


def test_configs_built_in_code_are_checked_by_train():
    from sclle.train.trainer import train

    cfg = TrainConfig()
    cfg.optim.lr = float("nan")  # bypasses load_config
    with pytest.raises(SclleError, match="optim.lr"):
        train(cfg)
    with pytest.raises(SclleError, match="time-budget-min"):
        train(TrainConfig(), time_budget_min=-1)

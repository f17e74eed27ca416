"""Training safety: run folders are never mixed, resumes say what changed, corrupt checkpoints fall back.

Tiny runs (crop 32, batch 2, a few steps) on the generated data of conftest's ``data`` fixture.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from sclle.errors import SclleError
from sclle.train.trainer import (
    RunLock,
    check_resume_config,
    config_changes,
    list_checkpoints,
    load_checkpoint,
    train,
)

from conftest import make_train_cfg

QUIET = {"data.val_dir": "null", "logging.tensorboard": "false", "logging.image_every": 0}


def cfg_for(data, out: Path, **over):
    return make_train_cfg(data, out, **{**QUIET, **over})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def steps_logged(out: Path) -> list[int]:
    with open(out / "log.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# ------------------------------------------------------------------------------------------ run folders


def test_fresh_run_into_a_folder_holding_another_run_is_refused(data, vgg, tmp_path):
    out = tmp_path / "run"
    train(cfg_for(data, out, **{"schedule.steps": 2, "logging.ckpt_every": 1}), vgg=vgg)
    before = snapshot(out)
    assert {"checkpoints/step_0000001.pt", "checkpoints/step_0000002.pt", "log.csv"} <= set(before)
    with pytest.raises(SclleError) as exc:
        train(cfg_for(data, out, **{"schedule.steps": 1}), vgg=vgg)
    msg = one_line(exc)
    assert str(out) in msg and "--overwrite" in msg and "--resume" in msg and "checkpoints" in msg
    after = snapshot(out)
    after.pop(".sclle-train.lock", None), before.pop(".sclle-train.lock", None)
    assert after == before  # nothing touched


def test_overwrite_removes_the_old_run_first(data, vgg, tmp_path, capsys):
    out = tmp_path / "run"
    train(
        cfg_for(data, out, **{"schedule.steps": 4, "logging.ckpt_every": 1, "logging.log_every": 1}), vgg=vgg
    )
    assert [p.name for p in list_checkpoints(out)] == [f"step_000000{i}.pt" for i in (2, 3, 4)]
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    train(cfg_for(data, out, **{"schedule.steps": 2, "logging.ckpt_every": 0}), vgg=vgg, overwrite=True)
    assert "removed the previous run" in capsys.readouterr().err
    # nothing of the old run is left: no later checkpoints, no old log rows, the export is the new one
    assert [p.name for p in list_checkpoints(out)] == ["step_0000002.pt"]
    assert steps_logged(out) == [2]
    assert json.loads((out / "export" / "tiny.json").read_text())["steps"] == 2
    assert (out / "notes.txt").read_text() == "mine"
    # so a following --resume continues the *new* run
    final = train(cfg_for(data, out, **{"schedule.steps": 3}), vgg=vgg, resume=True)
    assert load_checkpoint(final)["step"] == 3
    assert "step_0000002.pt (step 2)" in capsys.readouterr().err


def test_resume_without_a_checkpoint_beside_run_files_is_refused(data, vgg, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.csv").write_text("step,seconds,lr,total\n5,1.0,0.001,0.5\n")
    with pytest.raises(SclleError, match="no checkpoint to resume") as exc:
        train(cfg_for(data, out), vgg=vgg, resume=True)
    assert "--overwrite" in one_line(exc)
    assert (out / "log.csv").read_text().endswith("0.5\n")
    with pytest.raises(SclleError, match="cannot be combined"):
        train(cfg_for(data, out), vgg=vgg, resume=True, overwrite=True)


def test_a_folder_in_use_by_another_run_is_refused(data, vgg, tmp_path):
    out = tmp_path / "run"
    lock = RunLock(out)  # what a concurrent `sclle train` into the same folder holds
    try:
        with pytest.raises(SclleError, match="another sclle train") as exc:
            train(cfg_for(data, out, **{"schedule.steps": 1}), vgg=vgg)
        one_line(exc)
        assert not (out / "checkpoints").exists() and not (out / "config.yaml").exists()
    finally:
        lock.release()
    train(cfg_for(data, out, **{"schedule.steps": 1}), vgg=vgg)  # free again once the other run ends
    assert (out / "checkpoints" / "step_0000001.pt").is_file()


def test_cli_refusal_is_one_line_and_exit_2(data, tmp_path, capsys):
    from sclle.train.__main__ import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("seed: 0\n")
    args = ["--out", str(out), "--device", "cpu", "--steps", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "holds another run" in err
    assert main([*args, "--steps", "-5"]) == 2  # invalid config: refused before anything runs
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "schedule.steps" in err and "\n" not in err


# ------------------------------------------------------------------------------------------ resume checks


def test_resume_reports_changes_and_refuses_inexact_ones(data, vgg, tmp_path, capsys):
    out = tmp_path / "run"
    train(cfg_for(data, out, **{"schedule.steps": 2}), vgg=vgg)
    capsys.readouterr()
    for key, value, shown in (("seed", 1, "seed 0 -> 1"), ("optim.lr", 5e-4, "optim.lr 0.001 -> 0.0005")):
        with pytest.raises(SclleError, match="break exact resumption") as exc:
            train(cfg_for(data, out, **{"schedule.steps": 3, key: value}), vgg=vgg, resume=True)
        msg = one_line(exc)
        assert shown in msg and "--force" in msg and "schedule.steps" not in msg
    assert [p.name for p in list_checkpoints(out)] == ["step_0000002.pt"]  # refusals wrote nothing
    with pytest.raises(SclleError, match="past schedule.steps"):
        train(cfg_for(data, out, **{"schedule.steps": 1}), vgg=vgg, resume=True)
    # harmless changes go through with a note naming them
    train(cfg_for(data, out, **{"schedule.steps": 3, "logging.log_every": 1}), vgg=vgg, resume=True)
    err = capsys.readouterr().err
    assert "schedule.steps 2 -> 3" in err and "logging.log_every 5 -> 1" in err and "warning" not in err
    # --force resumes anyway and says what it accepted
    final = train(
        cfg_for(data, out, **{"schedule.steps": 4, "logging.log_every": 1, "loss.weights.color": 3}),
        vgg=vgg,
        resume=True,
        force=True,
    )
    assert load_checkpoint(final)["step"] == 4
    assert "warning: resuming despite" in capsys.readouterr().err
    # a forced learning-rate change applies (the saved optimizer state would otherwise bring the old lr back)
    assert load_checkpoint(final)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    final = train(
        cfg_for(
            data,
            out,
            **{"schedule.steps": 5, "logging.log_every": 1, "loss.weights.color": 3, "optim.lr": 2e-4},
        ),
        vgg=vgg,
        resume=True,
        force=True,
    )
    ckpt = load_checkpoint(final)
    assert ckpt["step"] == 5 and ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-4)
    assert ckpt["optimizer"]["state"], "Adam moments were restored, not reset"
    with open(out / "log.csv") as f:
        assert float(list(csv.DictReader(f))[-1]["lr"]) == pytest.approx(2e-4)


def test_config_changes_lists_every_difference():
    from sclle.train.config import load_config

    saved = load_config(None, []).to_dict()
    del saved["loss"]["weights"]["exposure"]  # a checkpoint older than an option: counts as its default
    cur = load_config(None, ["seed=3", "schedule.steps=7", "data.gamma_range=[1, 2]"])
    changes = {k: (a, b) for k, a, b in config_changes(saved, cur)}
    assert changes == {
        "seed": (0, 3),
        "schedule.steps": (20000, 7),
        "data.gamma_range": ([1.5, 4.0], [1.0, 2.0]),
    }
    ckpt = {"step": 5, "config": saved}
    with pytest.raises(SclleError, match="data.gamma_range"):
        check_resume_config(ckpt, Path("c.pt"), cur, force=False, main=False)
    check_resume_config(ckpt, Path("c.pt"), cur, force=True, main=False)


# ------------------------------------------------------------------------------------------ corrupt checkpoints


def _corrupt(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        noise = torch.randint(0, 256, (len(raw),), generator=torch.Generator().manual_seed(0))
        path.write_bytes(noise.to(torch.uint8).numpy().tobytes())
    else:  # unpickles fine, but the weights are NaN
        ckpt = torch.load(path, weights_only=True)
        next(iter(ckpt["model"].values())).fill_(float("nan"))
        torch.save(ckpt, path)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "garbage", "nan"])
def test_corrupt_latest_checkpoint_falls_back_to_the_previous(data, vgg, tmp_path, capsys, how):
    torch.set_num_threads(1)
    over = {"logging.ckpt_every": 2, "logging.log_every": 1}
    ref = train(cfg_for(data, tmp_path / "ref", **{**over, "schedule.steps": 6}), vgg=vgg)
    out = tmp_path / "run"
    train(cfg_for(data, out, **{**over, "schedule.steps": 4}), vgg=vgg)
    _corrupt(out / "checkpoints" / "step_0000004.pt", how)
    capsys.readouterr()
    final = train(cfg_for(data, out, **{**over, "schedule.steps": 6}), vgg=vgg, resume=True)
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert (
        len(warning) == 1
        and "step_0000004.pt" in warning[0]
        and "falling back to step_0000002.pt" in warning[0]
    )
    assert "resuming from" in err and "step 2)" in err
    # the fallback continued the same run: bit-identical to the uninterrupted one, and step 4 rewritten
    a, b = load_checkpoint(ref)["model"], load_checkpoint(final)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(out / "checkpoints" / "step_0000004.pt")["step"] == 4
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6]


def test_no_readable_checkpoint_is_a_clear_error(data, vgg, tmp_path):
    out = tmp_path / "run"
    train(cfg_for(data, out, **{"schedule.steps": 2, "logging.ckpt_every": 1}), vgg=vgg)
    first, second = list_checkpoints(out)
    _corrupt(second, "truncated")
    with pytest.raises(SclleError, match="cannot read checkpoint") as exc:  # a named file never falls back
        train(cfg_for(data, out, **{"schedule.steps": 3}), vgg=vgg, resume=second)
    assert str(second) in one_line(exc)
    _corrupt(first, "garbage")
    with pytest.raises(SclleError, match="no readable checkpoint") as exc:
        train(cfg_for(data, out, **{"schedule.steps": 3}), vgg=vgg, resume=True)
    assert "2 tried" in one_line(exc) and "--overwrite" in str(exc.value)


def test_resume_from_an_older_checkpoint_drops_the_abandoned_later_ones(data, vgg, tmp_path):
    out = tmp_path / "run"
    over = {"logging.ckpt_every": 2, "logging.log_every": 1}
    train(cfg_for(data, out, **{**over, "schedule.steps": 4}), vgg=vgg)
    assert [p.name for p in list_checkpoints(out)] == ["step_0000002.pt", "step_0000004.pt"]
    final = train(
        cfg_for(data, out, **{**over, "schedule.steps": 3}),
        vgg=vgg,
        resume=out / "checkpoints" / "step_0000002.pt",
    )
    # step 4 belonged to the abandoned continuation: a later --resume must not pick it up
    assert [p.name for p in list_checkpoints(out)] == ["step_0000002.pt", "step_0000003.pt"]
    assert final.name == "step_0000003.pt" and steps_logged(out) == [1, 2, 3]

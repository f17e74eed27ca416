"""DDP: two CPU processes (gloo, torch.multiprocessing.spawn) reproduce one process on the combined batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch

from sclle.train.config import TrainConfig
from sclle.train.trainer import init_enhancer, load_checkpoint, seed_everything, train

from conftest import make_train_cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    train(TrainConfig.from_dict(cfg_dict))


@pytest.mark.slow
@pytest.mark.parametrize("scale_consistency", [0.0, 20.0])
def test_ddp_two_processes_match_one(data, vgg, tmp_path, scale_consistency):
    import torch.multiprocessing as mp

    over = {
        "schedule.steps": 2,
        "schedule.batch": 4,
        "data.val_dir": "null",
        "logging.tensorboard": "false",
        "loss.weights.scale_consistency": str(scale_consistency),
    }
    single = train(make_train_cfg(data, tmp_path / "one", **over), vgg=vgg)
    cfg = make_train_cfg(data, tmp_path / "two", **over)
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg.to_dict()), nprocs=2, join=True)
    a = load_checkpoint(single)["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "step_0000002.pt")["model"]
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-5
    # and training did change the weights (the comparison is not vacuous): the weights before step 1
    seed_everything(cfg.seed)
    c = init_enhancer(cfg).state_dict()
    assert max(float((a[k] - c[k]).abs().max()) for k in a) > 1e-5

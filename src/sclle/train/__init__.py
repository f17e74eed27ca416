"""Training: the SCL-LLE trainer (:mod:`sclle.train.trainer`) and its config (:mod:`sclle.train.config`).

``from sclle.train import train, load_config`` -- imported lazily so that ``sclle.train.segmentation``
and the CLI do not pay for the trainer's imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from sclle.train.trainer import train

        return train
    if name in ("TrainConfig", "load_config"):
        from sclle.train import config

        return getattr(config, name)
    raise AttributeError(f"module 'sclle.train' has no attribute {name!r}")

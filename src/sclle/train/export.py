"""The trained enhancer as the model registry loads it: float32 safetensors plus a JSON record.

The record says what the model was trained on and with (data, steps, loss weights, full config),
its scores and the file's sha256.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from sclle.core.files import atomic_save, sha256_file, write_json
from sclle.models.dce import DCENet
from sclle.train.config import TrainConfig

EXPORT_FORMAT = "sclle-enhancer/1"


def export_model(
    net: DCENet, out_dir: str | Path, name: str, *, cfg: TrainConfig, step: int, scores: dict | None = None
) -> Path:
    """Write ``<name>.safetensors`` (float32 DCENet state_dict) and ``<name>.json`` (metadata)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.safetensors"
    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    header = {"format": EXPORT_FORMAT, "architecture": "DCENet", "step": str(step)}
    atomic_save(target, lambda tmp: save_file(sd, str(tmp), metadata=header))
    sha = sha256_file(target)
    c = cfg.to_dict()
    meta = {
        "name": name,
        "kind": "enhancer",
        "file": target.name,
        "sha256": sha,
        "format": EXPORT_FORMAT,
        "architecture": "DCENet",
        "params": int(sum(v.numel() for v in sd.values())),
        "steps": int(step),
        "data": {
            "train": {
                k: c["data"][k]
                for k in ("dataset", "root", "split", "darken", "gamma_range", "exposure_range")
            },
            "pool": c["data"]["pool"],
            "crop": c["schedule"]["crop"],
            "batch": c["schedule"]["batch"],
        },
        "loss": c["loss"],
        "scores": scores or {},
        "config": c,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
    }
    write_json(out_dir / f"{name}.json", meta)
    return target

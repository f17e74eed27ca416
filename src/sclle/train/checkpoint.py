"""Training checkpoints: the file format, reading with checks, writing atomically, which ones are kept.

``checkpoints/step_XXXXXXX.pt`` holds ``{"format", "model", "optimizer", "step", "rng", "config",
"final"}``, read with ``torch.load(weights_only=True)`` (a checkpoint never runs code). Truncated,
incomplete or non-finite files are refused with one :class:`SclleError`, so a resume can fall back to
the previous checkpoint (:mod:`sclle.train.resume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sclle.core.files import atomic_save
from sclle.errors import SclleError
from sclle.train.config import TrainConfig
from sclle.train.distributed import unwrap
from sclle.train.rng import rng_state, set_rng_state

CHECKPOINT_FORMAT = "sclle-train-checkpoint/1"
CHECKPOINT_KEYS = ("model", "optimizer", "step", "rng", "config")


def checkpoint_path(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:07d}.pt"


def checkpoint_step(path: Path) -> int | None:
    """The step in a ``step_XXXXXXX.pt`` name (None for any other name)."""
    stem = path.name[len("step_") : -len(".pt")] if path.name.startswith("step_") else ""
    return int(stem) if stem.isdigit() else None


def list_checkpoints(out: str | Path) -> list[Path]:
    """The checkpoints in ``out/checkpoints``, oldest step first."""
    folder = Path(out) / "checkpoints"
    found = [(checkpoint_step(p), p) for p in folder.glob("step_*.pt")] if folder.is_dir() else []
    return [p for s, p in sorted((s, p) for s, p in found if s is not None)]


def find_latest_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``out/checkpoints`` (None if there is none)."""
    found = list_checkpoints(out)
    return found[-1] if found else None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a trainer checkpoint (``weights_only``: never runs code from the file).

    A file that unpickles but lacks a key, or holds non-finite weights, is refused like a truncated
    one, so a resume falls back to the previous checkpoint instead of training from garbage.
    """
    p = Path(path)
    if not p.is_file():
        raise SclleError("checkpoint not found", p)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SclleError(f"cannot read checkpoint ({type(exc).__name__}: {_first_line(exc)})", p) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SclleError(f"not a sclle training checkpoint (format {CHECKPOINT_FORMAT})", p)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise SclleError(f"incomplete training checkpoint (missing {', '.join(missing)})", p)
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise SclleError("corrupt training checkpoint (model is not a state dict)", p)
    bad = [k for k, v in model.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise SclleError(f"corrupt training checkpoint (non-finite values in {bad[0]})", p)
    if isinstance(ckpt["step"], bool) or not isinstance(ckpt["step"], int) or ckpt["step"] < 0:
        raise SclleError(f"corrupt training checkpoint (step {ckpt['step']!r})", p)
    return ckpt


def restore_checkpoint(
    ckpt: dict[str, Any], path: Path, net: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Load a checkpoint's weights, optimizer and RNG state; any mismatch is one :class:`SclleError`.

    The optimizer's hyper-parameters (lr, betas, weight decay) stay those it was built with from the
    current config: ``load_state_dict`` would bring back the saved ones, so a forced resume with a
    lower learning rate would silently keep the old one. Unchanged configs resume bit-exactly either way.
    """
    try:
        net.load_state_dict(ckpt["model"])
        hyper = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        optimizer.load_state_dict(ckpt["optimizer"])
        for group, kept in zip(optimizer.param_groups, hyper, strict=True):
            group.update(kept)
        set_rng_state(ckpt["rng"])
    except Exception as exc:
        raise SclleError(
            f"cannot restore checkpoint ({type(exc).__name__}: {_first_line(exc)})", path
        ) from None


def save_checkpoint(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    out: Path,
    *,
    main: bool = True,
    final: bool = False,
) -> Path:
    """Write the checkpoint of ``step`` atomically (rank 0 only; every rank gets its path back).

    Later steps than this one are an abandoned future (a resume fell back past an unreadable
    checkpoint, or ``--resume-from`` an older one): they are dropped, else the next ``--resume`` would
    pick them. Of the rest the newest ``logging.keep_ckpts`` stay (at least 2: the previous one is the
    fallback).
    """
    path = checkpoint_path(out, step)
    if not main:
        return path
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "rng": rng_state(),
        "config": cfg.to_dict(),
        "final": bool(final),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: torch.save(ckpt, tmp))
    keep = max(2, cfg.logging.keep_ckpts)
    found = list_checkpoints(out)
    past = [p for p in found if (checkpoint_step(p) or 0) <= step]
    for p in [p for p in found if (checkpoint_step(p) or 0) > step] + past[:-keep]:
        if p != path:
            p.unlink(missing_ok=True)
    return path

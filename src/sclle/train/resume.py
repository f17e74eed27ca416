"""Where a resumed run starts: the newest readable checkpoint, and whether the config may have changed.

A resume must continue *exactly* as the uninterrupted run. An unreadable latest checkpoint falls back
to the previous one; config changes that keep the trajectory (:data:`RESUME_SAFE_KEYS`,
``logging.*``) get a note, the others are refused unless forced (docs/training.md, "Run folders and
resuming").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sclle.errors import SclleError
from sclle.train.checkpoint import load_checkpoint, restore_checkpoint
from sclle.train.config import TrainConfig
from sclle.train.logs import say


def resume_from(
    candidates: list[Path], *, explicit: bool, net: nn.Module, optimizer: torch.optim.Optimizer, main: bool
) -> tuple[dict[str, Any], Path]:
    """Restore the newest readable checkpoint of ``candidates`` (newest first).

    An unreadable latest checkpoint (truncated, garbage, non-finite) falls back to the previous one
    with a warning; a checkpoint the user named (``--resume-from``) never falls back.
    """
    errors: list[SclleError] = []
    for i, path in enumerate(candidates):
        try:
            ckpt = load_checkpoint(path)
            restore_checkpoint(ckpt, path, net, optimizer)
        except SclleError as exc:
            if explicit:
                raise
            errors.append(exc)
            if main and i + 1 < len(candidates):
                say("warning", f"{exc}; falling back to {candidates[i + 1].name}")
            continue
        return ckpt, path
    folder = candidates[0].parent if candidates else "checkpoints"
    raise SclleError(
        f"no readable checkpoint to resume from ({len(errors)} tried; latest: {errors[0] if errors else '-'}); "
        "use --overwrite to start afresh",
        folder,
    )


#: Config keys whose change keeps a resumed run on the uninterrupted run's trajectory (a note is
#: printed); any other change is refused unless forced. ``logging.*`` is allowed as a whole.
RESUME_SAFE_KEYS = frozenset(
    {"schedule.steps", "device", "data.val_dir", "data.val_max_images", "data.val_max_side", "data.preload"}
)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, key))
        else:
            flat[key] = list(v) if isinstance(v, tuple) else v
    return flat


def config_changes(saved: dict[str, Any], cfg: TrainConfig) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for every value that differs (keys a saved config lacks
    count as their default: older checkpoints predate newer options)."""
    old = _flatten(TrainConfig().to_dict())
    old.update(_flatten(saved))
    new = _flatten(cfg.to_dict())
    return [(k, old.get(k), v) for k, v in new.items() if old.get(k) != v]


def _is_resume_safe(key: str) -> bool:
    return key in RESUME_SAFE_KEYS or key.startswith("logging.")


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def check_resume_config(
    ckpt: dict[str, Any], path: Path, cfg: TrainConfig, *, force: bool, main: bool = True
) -> None:
    """Say which config values changed since ``ckpt``; refuse those that break exact resumption.

    Harmless changes (:data:`RESUME_SAFE_KEYS`, ``logging.*``) get a note; the others (seed, data,
    model, loss, optimiser, batch, crop...) raise unless ``force``, then a warning.
    """
    step = int(ckpt["step"])
    if step > cfg.schedule.steps:
        raise SclleError(
            f"cannot resume: the checkpoint is at step {step}, past schedule.steps {cfg.schedule.steps} "
            "(raise --steps)",
            path,
        )
    changes = config_changes(ckpt["config"] if isinstance(ckpt["config"], dict) else {}, cfg)
    safe = [f"{k} {_fmt(a)} -> {_fmt(b)}" for k, a, b in changes if _is_resume_safe(k)]
    unsafe = [f"{k} {_fmt(a)} -> {_fmt(b)}" for k, a, b in changes if not _is_resume_safe(k)]
    if unsafe and not force:
        raise SclleError(
            f"cannot resume: config changed in ways that break exact resumption: {'; '.join(unsafe)} "
            "(use --force to resume anyway, or another --out folder for a new run)",
            path,
        )
    if main:
        say("note", f"resuming from {path} (step {step})")
        if safe:
            say("note", f"config changed since the checkpoint (harmless for resuming): {'; '.join(safe)}")
        if unsafe:
            say(
                "warning",
                f"resuming despite changes that break exact resumption (--force): {'; '.join(unsafe)}",
            )

"""The SCL-LLE trainer: only the DCE-Net enhancer learns; VGG-16 and the segmenter stay frozen.

One step (global batch B, split over DDP ranks)::

    low, labels      <- StreetScenes.batch(step)                 random crops, flips, darkening
    pos, neg         <- pool statistics, indices drawn for step  (VGG Grams computed once, cached)
    curves = net(low); enhanced = apply_curves(low, curves)
    seg_logits = prior(enhanced)                                  (if the semantic CE term is on)
    loss = SCLObjective(low, enhanced, curves, labels, seg_logits, pos, neg)["total"]
    Adam step (gradient clipping optional)

Every random choice of a step is derived from ``(seed, step)`` (see :mod:`sclle.data.street`), so
a run resumed from a checkpoint continues *exactly* as the uninterrupted run, and N DDP ranks
reproduce one process on the combined batch.

Outputs in ``logging.out``::

    config.yaml                  the full config of the run
    log.csv                      step, seconds, lr and every loss term (averaged over log_every steps)
    tb/                          TensorBoard scalars and before/after images
    samples/step_XXXXXXX.png     before (top) / after (bottom) grids
    val.csv                      step, NIQE, mean brightness on the held-out folder
    checkpoints/step_XXXXXXX.pt  {"model": DCENet state_dict, "optimizer", "step", "rng", "config"}
    export/<name>.safetensors    float32 DCENet state_dict (loadable by sclle.models.registry)
    export/<name>.json           metadata: data, steps, loss weights, config, scores, sha256
    .sclle-train.lock            held while a run goes, so a second run into the folder is refused

A fresh run refuses a folder that holds another run unless ``overwrite``; a resume reports config
changes and refuses those that break exactness unless ``force``; an unreadable latest checkpoint
falls back to the previous one (docs/training.md, "Run folders and resuming").
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sclle import imageio
from sclle.core.device import resolve_device
from sclle.core.files import atomic_save, atomic_write
from sclle.data.contrast import ContrastPool, PoolPair, vgg_fingerprint
from sclle.data.darken import DarkenProtocol, NoiseModel, image_generator
from sclle.data.street import StreetScenes
from sclle.errors import SclleError
from sclle.losses.contrastive import OVER_EXPOSED, UNDER_EXPOSED
from sclle.losses.objective import SCLObjective
from sclle.losses.preservation import estimate_curves_at_scale
from sclle.models.dce import DCENet, apply_curves
from sclle.train.config import TrainConfig, save_config

CHECKPOINT_FORMAT = "sclle-train-checkpoint/1"
EXPORT_FORMAT = "sclle-enhancer/1"
#: Seed offset of the pool-sampling stream (the data streams use seed and seed + 1_000_003).
_POOL_SEED_OFFSET = 2_000_029

#: Called after each optimisation step with (step, losses as floats) on rank 0; tests use it.
StepCallback = Callable[[int, dict[str, float]], None]


# ------------------------------------------------------------------------------------------ helpers


def _train_device(name: str, local_rank: int = 0) -> torch.device:
    """The shared resolver, with a bare ``cuda`` pinned to this DDP rank's GPU (DDP needs an index)."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def _say(kind: str, message: str) -> None:
    """One ``note: ...`` / ``warning: ...`` line on stderr (rank 0 calls it), as the other commands print."""
    print(f"{kind}: {' '.join(message.split())}", file=sys.stderr, flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states in types ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def init_enhancer(cfg: TrainConfig) -> DCENet:
    """A DCE-Net initialised as ``model.init`` says (scratch draws from the torch RNG: seed first)."""
    init = cfg.model.init
    if init == "scratch":
        net = DCENet()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.normal_(0.0, cfg.model.init_std)
        return net
    from sclle.models.registry import load_weights

    net, _ = load_weights(init)
    return net.train()


class _CurvesAndSmall(nn.Module):
    """Curves at full resolution and from a downscaled copy, in *one* forward call.

    The scale-consistency term needs two enhancer passes per step; DDP allows only one forward per
    backward, so both passes live in this module's forward (shared weights are fine under DDP).
    """

    def __init__(self, net: DCENet, scale: float = 0.25) -> None:
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), estimate_curves_at_scale(self.net, x, self.scale)


def _unwrap(net: nn.Module) -> DCENet:
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net  # type: ignore[return-value]


def checkpoint_path(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:07d}.pt"


def _checkpoint_step(path: Path) -> int | None:
    stem = path.name[len("step_") : -len(".pt")] if path.name.startswith("step_") else ""
    return int(stem) if stem.isdigit() else None


def list_checkpoints(out: str | Path) -> list[Path]:
    """The checkpoints in ``out/checkpoints``, oldest step first."""
    folder = Path(out) / "checkpoints"
    found = [(_checkpoint_step(p), p) for p in folder.glob("step_*.pt")] if folder.is_dir() else []
    return [p for s, p in sorted((s, p) for s, p in found if s is not None)]


def find_latest_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``out/checkpoints`` (None if there is none)."""
    found = list_checkpoints(out)
    return found[-1] if found else None


_CHECKPOINT_KEYS = ("model", "optimizer", "step", "rng", "config")


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
        first = (str(exc).splitlines() or [""])[0][:200]
        raise SclleError(f"cannot read checkpoint ({type(exc).__name__}: {first})", p) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SclleError(f"not a sclle training checkpoint (format {CHECKPOINT_FORMAT})", p)
    missing = [k for k in _CHECKPOINT_KEYS if k not in ckpt]
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


def _restore(ckpt: dict[str, Any], path: Path, net: DCENet, optimizer: torch.optim.Optimizer) -> None:
    """Load a checkpoint's weights, optimizer and RNG state; any mismatch is one :class:`SclleError`."""
    try:
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise SclleError(f"cannot restore checkpoint ({type(exc).__name__}: {first})", path) from None


def _resume_from(
    candidates: list[Path], *, explicit: bool, net: DCENet, optimizer: torch.optim.Optimizer, main: bool
) -> tuple[dict[str, Any], Path]:
    """Restore the newest readable checkpoint of ``candidates`` (newest first).

    An unreadable latest checkpoint (truncated, garbage, non-finite) falls back to the previous one
    with a warning; a checkpoint the user named (``--resume-from``) never falls back.
    """
    errors: list[SclleError] = []
    for i, path in enumerate(candidates):
        try:
            ckpt = load_checkpoint(path)
            _restore(ckpt, path, net, optimizer)
        except SclleError as exc:
            if explicit:
                raise
            errors.append(exc)
            if main and i + 1 < len(candidates):
                _say("warning", f"{exc}; falling back to {candidates[i + 1].name}")
            continue
        return ckpt, path
    folder = candidates[0].parent if candidates else "checkpoints"
    raise SclleError(
        f"no readable checkpoint to resume from ({len(errors)} tried; latest: {errors[0] if errors else '-'}); "
        "use --overwrite to start afresh",
        folder,
    )


# ------------------------------------------------------------------------------------------ run folder

#: What a run writes into its folder; a fresh run refuses a folder holding any of them (unless
#: ``overwrite``, which removes exactly these and nothing else the folder holds).
RUN_ENTRIES = ("checkpoints", "export", "log.csv", "val.csv", "config.yaml", "samples", "tb")
_LOCK_NAME = ".sclle-train.lock"


def run_files(out: str | Path) -> list[str]:
    """The entries of :data:`RUN_ENTRIES` present in ``out`` (empty folders do not count)."""
    out = Path(out)
    found = []
    for name in RUN_ENTRIES:
        p = out / name
        if p.is_symlink() or p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(name)
    return found


def clear_run(out: str | Path) -> list[str]:
    """Remove a previous run's files from ``out`` (only :data:`RUN_ENTRIES`); return what was removed."""
    out = Path(out)
    removed = []
    for name in RUN_ENTRIES:
        p = out / name
        try:
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
            else:
                continue
        except OSError as exc:
            raise SclleError(
                f"cannot remove the previous run's {name} ({exc.strerror or exc})", out
            ) from None
        removed.append(name)
    return removed


class _RunLock:
    """An advisory lock on ``out/.sclle-train.lock`` held for the whole run (rank 0).

    Two runs into one folder would otherwise both pass the "folder holds another run" check and then
    replace each other's files. The OS drops the lock when the process dies (even by kill -9), so a
    crashed run never leaves a stale lock. The file itself stays: removing it would let two runs
    lock two different files of the same name.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / _LOCK_NAME
        try:
            out.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a+")  # noqa: SIM115 (held open for the lifetime of the run)
        except OSError as exc:
            raise SclleError(f"cannot write to the run folder ({exc.strerror or exc})", out) from None
        self.file.seek(0)  # Windows locks the byte at the current position: the same byte in every run
        if not _try_lock(self.file):
            try:
                holder = self.file.read().strip() or "?"
            except OSError:  # Windows: the locked byte cannot be read
                holder = "?"
            self.file.close()
            raise SclleError(
                f"another sclle train (pid {holder}) is using this run folder; wait for it or use another --out",
                out,
            )
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            self.file.close()  # closing the descriptor drops the lock


def _try_lock(f: Any) -> bool:
    """Non-blocking exclusive lock of an open file; True where locking is not supported."""
    try:
        import fcntl
    except ImportError:  # Windows
        try:
            import msvcrt

            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except ImportError:
            return True
        except OSError:
            return False
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


@dataclass
class _Plan:
    """Where a run starts: checkpoints to try (newest first) and the rank-0 folder lock."""

    candidates: list[Path]
    explicit: bool
    lock: _RunLock | None = None


def _plan_run(
    cfg: TrainConfig, dd: _Dist, device: torch.device, resume: bool | str | Path, overwrite: bool
) -> _Plan:
    """Decide fresh start or resume, and (rank 0) lock the run folder and check it holds no other run."""
    out = Path(cfg.logging.out)
    if out.exists() and not out.is_dir():
        raise SclleError("the run folder is a file", out)
    explicit = resume is not True and bool(resume)
    if resume is True:
        candidates = list_checkpoints(out)[::-1]
    elif explicit:
        candidates = [Path(resume)]  # type: ignore[arg-type]
    else:
        candidates = []
    ckpt_dir = out / "checkpoints"
    own = bool(candidates) and (resume is True or candidates[0].resolve().parent == ckpt_dir.resolve())
    if overwrite and (resume is True or own):
        raise SclleError(
            "--overwrite starts a new run; it cannot be combined with resuming this folder's run"
        )
    plan = _Plan(candidates, explicit)
    error: SclleError | None = None
    if dd.main:
        try:
            plan.lock = _RunLock(out)
            existing = [] if own else run_files(out)
            if existing and not overwrite:
                what = ", ".join(existing)
                if resume is True:
                    raise SclleError(
                        f"holds files of a run ({what}) but no checkpoint to resume from; "
                        "use --overwrite (without --resume) to start afresh here",
                        out,
                    )
                raise SclleError(
                    f"holds another run ({what}); use --resume to continue it, --overwrite to replace it, "
                    "or another --out folder",
                    out,
                )
            if existing:
                clear_run(out)
                _say("note", f"{out}: removed the previous run ({', '.join(existing)}) (--overwrite)")
        except SclleError as exc:
            error = exc
    if dd.world > 1:  # every rank stops when rank 0 refuses (else the others would wait forever)
        flag = torch.tensor([0.0 if error is None else 1.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0 and error is None:
            error = SclleError("rank 0 refused the run folder (see its error)", out)
    if error is not None:
        if plan.lock is not None:
            plan.lock.release()
        raise error
    return plan


# ------------------------------------------------------------------------------------------ resume checks

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
        _say("note", f"resuming from {path} (step {step})")
        if safe:
            _say("note", f"config changed since the checkpoint (harmless for resuming): {'; '.join(safe)}")
        if unsafe:
            _say(
                "warning",
                f"resuming despite changes that break exact resumption (--force): {'; '.join(unsafe)}",
            )


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sclle" / "pool_stats"


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if dist.is_initialized():
        return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)
    wants_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if wants_cuda else "gloo"
    if wants_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return _Dist(rank=rank, world=world, local_rank=local, initialised_here=True)


# ------------------------------------------------------------------------------------------ validation


class _Validator:
    """NIQE and mean brightness of the enhanced held-out images (rank 0 only)."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.images: list[torch.Tensor] = []
        self.niqe = None
        self.device = device
        d = cfg.data
        if not d.val_dir:
            return
        folder = Path(d.val_dir)
        if not folder.is_dir():
            warnings.warn(f"validation folder {folder} not found; validation skipped", stacklevel=2)
            return
        files = sorted(p for p in folder.iterdir() if p.is_file() and imageio.is_supported(p))[
            : d.val_max_images
        ]
        for p in files:
            x = imageio.to_tensor(imageio.read_image(p).rgb)
            h, w = x.shape[-2:]
            s = d.val_max_side / max(h, w)
            if s < 1:
                size = (max(8, round(h * s)), max(8, round(w * s)))
                x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(
                    0, 1
                )
            self.images.append(x)
        try:
            from sclle.metrics import create  # type: ignore[attr-defined]

            self.niqe = create("niqe")
        except Exception as exc:  # metric not available in this build: brightness only
            warnings.warn(
                f"NIQE unavailable ({type(exc).__name__}: {exc}); validation reports brightness only",
                stacklevel=2,
            )
            self.niqe = None

    def __bool__(self) -> bool:
        return bool(self.images)

    @torch.no_grad()
    def __call__(self, net: DCENet) -> dict[str, float]:
        was_training = net.training
        net.eval()
        niqe, bright = [], []
        for x in self.images:
            y = net.enhance(x.to(self.device)).float().clamp(0, 1)
            bright.append(float(y.mean()))
            if self.niqe is not None:
                try:
                    niqe.append(float(torch.as_tensor(self.niqe(y.cpu())).float().mean()))
                except Exception as exc:
                    warnings.warn(f"NIQE failed ({type(exc).__name__}: {exc}); disabled", stacklevel=2)
                    self.niqe = None
        net.train(was_training)
        out = {"brightness": float(np.mean(bright))}
        if niqe:
            out["niqe"] = float(np.mean(niqe))
        return out


# ------------------------------------------------------------------------------------------ logging


class _Logger:
    """CSV + TensorBoard on rank 0; buffers per-step losses on device and averages them at log steps."""

    def __init__(self, out: Path, cfg: TrainConfig, start_step: int) -> None:
        self.out = out
        self.csv_path = out / "log.csv"
        self.val_path = out / "val.csv"
        self.keys: list[str] | None = None
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        for p in (self.csv_path, self.val_path):
            _truncate_csv(p, start_step)
        self.tb = None
        if cfg.logging.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)
            except Exception as exc:  # tensorboard missing or broken: CSV only
                warnings.warn(f"TensorBoard unavailable ({type(exc).__name__}); CSV logs only", stacklevel=2)

    def accumulate(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1

    def flush(self, step: int, seconds: float, lr: float) -> dict[str, float]:
        if not self.count:
            return {}
        vals = {k: float(v) / self.count for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        if self.keys is None:
            self.keys = sorted(vals, key=lambda k: (k != "total", k))
            if not self.csv_path.is_file() or self.csv_path.stat().st_size == 0:
                with open(self.csv_path, "w", newline="") as f:
                    csv.writer(f).writerow(["step", "seconds", "lr", *self.keys])
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow(
                [
                    step,
                    f"{seconds:.2f}",
                    f"{lr:.3g}",
                    *[f"{vals.get(k, float('nan')):.6g}" for k in self.keys],
                ]
            )
        if self.tb is not None:
            for k, v in vals.items():
                self.tb.add_scalar(f"loss/{k}", v, step)
            self.tb.add_scalar("lr", lr, step)
        return vals

    def validation(self, step: int, scores: dict[str, float]) -> None:
        new = not self.val_path.is_file() or self.val_path.stat().st_size == 0
        keys = sorted(scores)
        with open(self.val_path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", *keys])
            w.writerow([step, *[f"{scores[k]:.5g}" for k in keys]])
        if self.tb is not None:
            for k, v in scores.items():
                self.tb.add_scalar(f"val/{k}", v, step)

    def images(self, step: int, low: torch.Tensor, enhanced: torch.Tensor, n: int = 4) -> None:
        from torchvision.utils import make_grid

        k = min(n, low.shape[0])
        grid = make_grid(
            torch.cat([low[:k], enhanced[:k]]).detach().float().cpu().clamp(0, 1), nrow=k, padding=2
        )
        arr = grid.permute(1, 2, 0).numpy()
        target = self.out / "samples" / f"step_{step:07d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        imageio.write_image(target, imageio.from_array(arr), arr, overwrite=True)
        if self.tb is not None:
            self.tb.add_image("before_after", grid, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def _truncate_csv(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (a resumed run re-logs them); remove the file on a fresh start."""
    if not path.is_file():
        return
    if step == 0:
        path.unlink()
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    buf = io.StringIO()
    csv.writer(buf).writerows(kept)
    atomic_write(path, buf.getvalue())


# ------------------------------------------------------------------------------------------ export


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
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
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
    atomic_write(out_dir / f"{name}.json", json.dumps(meta, indent=2) + "\n")
    return target


# ------------------------------------------------------------------------------------------ train


def _shallow_vgg(vgg: nn.Module, layers: tuple[str, ...], device: torch.device) -> nn.Module:
    """A VGG stopping at the deepest Gram layer, same weights (the pool needs no relu4_3: ~3x faster)."""
    from sclle.models.vgg import VGG16Features

    if not isinstance(vgg, VGG16Features) or set(vgg.layers) == set(layers) or vgg.source == "random":
        return vgg
    shallow = VGG16Features(layers, weights=vgg.source).to(device)
    return shallow if shallow.fingerprint == vgg.fingerprint else vgg


def _negative_kinds(cfg: TrainConfig) -> tuple[int, ...]:
    lc = cfg.loss
    kinds = []
    if lc.use_under_negatives:
        kinds.append(UNDER_EXPOSED)
    if lc.use_over_negatives:
        kinds.append(OVER_EXPOSED)
    return tuple(kinds)


def _build_prior(cfg: TrainConfig, device: torch.device) -> nn.Module | None:
    lc = cfg.loss
    if not (lc.use_semantic and lc.weights.segmentation_ce != 0.0):
        return None
    from sclle.models.segmentation import SemanticPrior, load_segmenter

    try:
        seg = load_segmenter(cfg.model.segmenter, device=device)
    except SclleError as exc:
        raise SclleError(
            f"the semantic CE term needs a segmenter: {exc}; pass model.segmenter=FILE, or train without it "
            "(--set loss.weights.segmentation_ce=0, or --set loss.use_semantic=false)"
        ) from None
    return SemanticPrior(seg).to(device)


def train(
    cfg: TrainConfig,
    *,
    resume: bool | str | Path = False,
    overwrite: bool = False,
    force: bool = False,
    time_budget_min: float | None = None,
    vgg: nn.Module | None = None,
    callback: StepCallback | None = None,
) -> Path:
    """Train the enhancer as ``cfg`` says; return the final checkpoint path.

    Args:
        resume: ``True`` continues from the latest readable checkpoint in ``logging.out`` (a fresh
            start if there is none; an unreadable latest one falls back to the previous one), a path
            continues from that checkpoint.
        overwrite: a fresh run may replace the run already in ``logging.out`` (its files are removed
            first); without it such a folder is refused.
        force: resume even when the config changed in ways that break exact resumption.
        time_budget_min: stop cleanly (checkpoint + export) once this many minutes have passed.
        vgg: an already built frozen VGG (tests inject one to avoid re-loading weights).
        callback: ``callback(step, losses)`` after each step on rank 0.
    """
    cfg.validate()
    if time_budget_min is not None and not (math.isfinite(time_budget_min) and time_budget_min >= 0):
        raise SclleError(f"--time-budget-min must be a finite number >= 0, got {time_budget_min!r}")
    dd = _setup_distributed(cfg.device)
    plan: _Plan | None = None
    try:
        device = _train_device(cfg.device, dd.local_rank)
        if cfg.schedule.batch % dd.world:
            raise SclleError(
                f"schedule.batch {cfg.schedule.batch} must be divisible by the {dd.world} DDP processes"
            )
        plan = _plan_run(cfg, dd, device, resume, overwrite)
        return _train(
            cfg,
            dd,
            device,
            plan,
            force=force,
            time_budget_min=time_budget_min,
            vgg=vgg,
            callback=callback,
        )
    finally:
        if plan is not None and plan.lock is not None:
            plan.lock.release()
        if dd.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig,
    dd: _Dist,
    device: torch.device,
    plan: _Plan,
    *,
    force: bool,
    time_budget_min: float | None,
    vgg: nn.Module | None,
    callback: StepCallback | None,
) -> Path:
    t_start = time.perf_counter()
    out = Path(cfg.logging.out)
    sch = cfg.schedule
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_amp = cfg.optim.amp == "bf16" and device.type == "cuda"

    seed_everything(cfg.seed)
    net = init_enhancer(cfg).to(device).train()
    objective = SCLObjective(cfg.loss, vgg=vgg, vgg_weights=cfg.model.vgg_weights).to(device)
    prior = _build_prior(cfg, device)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )

    # ---- resume
    start_step = 0
    if plan.candidates:
        ckpt, ckpt_file = _resume_from(
            plan.candidates, explicit=plan.explicit, net=net, optimizer=optimizer, main=dd.main
        )
        check_resume_config(ckpt, ckpt_file, cfg, force=force, main=dd.main)
        start_step = int(ckpt["step"])
        del ckpt

    # ---- data
    d = cfg.data
    protocol = None
    if d.darken:
        noise = NoiseModel(d.noise_peak, d.noise_read_std) if d.noise_peak else None
        protocol = DarkenProtocol(d.gamma_range, d.exposure_range, noise)
    extra = None
    if d.extra_fraction > 0:
        if not d.extra_dir:
            raise SclleError("data.extra_fraction > 0 needs data.extra_dir")
        from sclle.data.photos import UnlabelledPhotos

        extra = UnlabelledPhotos(d.extra_dir)
    street = StreetScenes(
        d.dataset,
        d.root,
        d.split,
        crop=sch.crop,
        protocol=protocol,
        hflip=d.hflip,
        seed=cfg.seed,
        preload=d.preload,
        device=device,  # type: ignore[arg-type]
        extra=extra,
        extra_fraction=d.extra_fraction,
    )
    lc = cfg.loss
    need_pool = lc.use_contrastive and (
        lc.weights.contrastive_gram != 0 or lc.weights.contrastive_brightness != 0
    )
    pool: ContrastPool | None = None
    stats: PoolPair | None = None
    kinds = _negative_kinds(cfg)
    if need_pool:
        pool = ContrastPool.load(d.pool)
        cache = Path(cfg.logging.cache_dir) if cfg.logging.cache_dir else _default_cache_dir()
        size = d.pool_size or sch.crop
        fp = vgg_fingerprint(objective.vgg)
        # rank 0 computes (or loads) and caches; the others then load the cache
        if dd.main:
            stats_vgg = objective.vgg
            if not pool.stats_cached(fp, lc.gram_layers, size, cache):
                stats_vgg = _shallow_vgg(objective.vgg, lc.gram_layers, device)
            stats = pool.stats(
                stats_vgg,
                lc.gram_layers,
                size,
                cache,
                device=device,
                fingerprint=fp,
                progress=cfg.logging.progress,
            )
            del stats_vgg
        if dd.world > 1:
            dist.barrier()
        if not dd.main:
            stats = pool.stats(objective.vgg, lc.gram_layers, size, cache, device=device, fingerprint=fp)

    use_scale = lc.weights.scale_consistency != 0
    model: nn.Module = _CurvesAndSmall(net) if use_scale else net
    if dd.world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    logger: _Logger | None = None
    validator: _Validator | None = None
    if dd.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        logger = _Logger(out, cfg, start_step)
        validator = _Validator(cfg, device)

    budget_s = None if time_budget_min is None else 60.0 * float(time_budget_min)
    scores: dict[str, float] = {}
    step = start_step
    bar = tqdm(
        total=sch.steps,
        initial=start_step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        disable=not (dd.main and cfg.logging.progress),
    )
    scores_step = -1
    try:
        while step < sch.steps:
            batch = street.batch(step, sch.batch, rank=dd.rank, world_size=dd.world)
            pos = neg = None
            if stats is not None and pool is not None:
                g = image_generator(cfg.seed + _POOL_SEED_OFFSET, step)
                # with both kinds switched off the objective drops the negatives itself
                pi, ni = pool.sample(
                    sch.n_pos, g, kinds=kinds or (UNDER_EXPOSED, OVER_EXPOSED), n_neg=sch.n_neg
                )
                pos = stats.positives.subset(pi)
                neg = stats.negatives.subset(ni)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                out_model = model(batch.low)
                curves, small_up = out_model if use_scale else (out_model, None)
                enhanced = apply_curves(batch.low, curves)
                seg_logits = prior(enhanced) if prior is not None else None
                losses = objective(
                    batch.low,
                    enhanced,
                    curves,
                    labels=batch.labels,
                    seg_logits=seg_logits,
                    pos_stats=pos,
                    neg_stats=neg if lc.use_negatives else None,
                    curves_small_up=small_up,
                )
            total = losses["total"]
            optimizer.zero_grad(set_to_none=True)
            total.float().backward()
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            step += 1

            if dd.main and logger is not None:
                logger.accumulate(losses)
                bar.update(1)
                if step % cfg.logging.log_every == 0 or step == sch.steps:
                    vals = logger.flush(step, time.perf_counter() - t_start, optimizer.param_groups[0]["lr"])
                    if not math.isfinite(vals.get("total", 0.0)):
                        raise SclleError(f"training diverged at step {step}: total loss {vals['total']}")
                    bar.set_postfix(loss=f"{vals.get('total', float('nan')):.4g}")
                if callback is not None:
                    callback(step, {k: float(v.detach()) for k, v in losses.items()})
                if cfg.logging.image_every and step % cfg.logging.image_every == 0:
                    logger.images(step, batch.low, enhanced)
                if validator and cfg.logging.val_every and step % cfg.logging.val_every == 0:
                    scores, scores_step = validator(net), step
                    logger.validation(step, scores)
            if cfg.logging.ckpt_every and step % cfg.logging.ckpt_every == 0 and step < sch.steps:
                _save_checkpoint(net, optimizer, step, cfg, out, dd)

            if budget_s is not None:
                stop = torch.tensor([float(time.perf_counter() - t_start > budget_s)], device=device)
                if dd.world > 1:
                    dist.all_reduce(stop, op=dist.ReduceOp.MAX)
                if stop.item() > 0:
                    if dd.main:
                        bar.write(f"time budget of {time_budget_min} min reached at step {step}; stopping")
                    break
    finally:
        bar.close()

    final = _save_checkpoint(net, optimizer, step, cfg, out, dd, final=True)
    if dd.main and logger is not None:
        if validator and scores_step != step:
            scores = validator(net)
            logger.validation(step, scores)
        export_model(net, out / "export", cfg.logging.name, cfg=cfg, step=step, scores=scores)
        logger.close()
    if dd.world > 1:
        dist.barrier()
    return final


def _save_checkpoint(
    net: DCENet,
    optimizer: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    out: Path,
    dd: _Dist,
    *,
    final: bool = False,
) -> Path:
    path = checkpoint_path(out, step)
    if not dd.main:
        return path
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in _unwrap(net).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "rng": rng_state(),
        "config": cfg.to_dict(),
        "final": bool(final),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: torch.save(ckpt, tmp))
    # Later steps than this one are an abandoned future (a resume fell back past an unreadable
    # checkpoint, or --resume-from an older one): drop them, else the next --resume would pick them.
    # Of the rest keep the newest keep_ckpts (>= 2: the previous one is the fallback).
    keep = max(2, cfg.logging.keep_ckpts)
    found = list_checkpoints(out)
    past = [p for p in found if (_checkpoint_step(p) or 0) <= step]
    for p in [p for p in found if (_checkpoint_step(p) or 0) > step] + past[:-keep]:
        if p != path:
            p.unlink(missing_ok=True)
    return path

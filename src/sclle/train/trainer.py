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
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import math
import os
import random
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

from sclle import io
from sclle.data.contrast import ContrastPool, PoolPair, _vgg_fingerprint
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


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda (this rank's GPU) if available, else cpu; a clear error if cuda is asked but absent."""
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SclleError("--device cuda asked for, but PyTorch sees no CUDA GPU (use --device cpu)")
        if name == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise SclleError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


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


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def checkpoint_path(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:07d}.pt"


def find_latest_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``out/checkpoints`` (None if there is none)."""
    folder = Path(out) / "checkpoints"
    found = sorted(folder.glob("step_*.pt")) if folder.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a trainer checkpoint (``weights_only``: never runs code from the file)."""
    p = Path(path)
    if not p.is_file():
        raise SclleError("checkpoint not found", p)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SclleError(
            f"cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", p
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SclleError(f"not a sclle training checkpoint (format {CHECKPOINT_FORMAT})", p)
    return ckpt


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
        files = sorted(p for p in folder.iterdir() if p.is_file() and io.is_supported(p))[: d.val_max_images]
        for p in files:
            x = io.to_tensor(io.read_image(p).rgb)
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
        io.write_image(target, io.from_array(arr), arr, overwrite=True)
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
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


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
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(sd, str(tmp), metadata={"format": EXPORT_FORMAT, "architecture": "DCENet", "step": str(step)})
    os.replace(tmp, target)
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
    _atomic_text(out_dir / f"{name}.json", json.dumps(meta, indent=2) + "\n")
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
    time_budget_min: float | None = None,
    vgg: nn.Module | None = None,
    callback: StepCallback | None = None,
) -> Path:
    """Train the enhancer as ``cfg`` says; return the final checkpoint path.

    Args:
        resume: ``True`` continues from the latest checkpoint in ``logging.out`` (a fresh start if
            there is none), a path continues from that checkpoint.
        time_budget_min: stop cleanly (checkpoint + export) once this many minutes have passed.
        vgg: an already built frozen VGG (tests inject one to avoid re-loading weights).
        callback: ``callback(step, losses)`` after each step on rank 0.
    """
    dd = _setup_distributed(cfg.device)
    try:
        return _train(cfg, dd, resume=resume, time_budget_min=time_budget_min, vgg=vgg, callback=callback)
    finally:
        if dd.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig,
    dd: _Dist,
    *,
    resume: bool | str | Path,
    time_budget_min: float | None,
    vgg: nn.Module | None,
    callback: StepCallback | None,
) -> Path:
    t_start = time.perf_counter()
    device = resolve_device(cfg.device, dd.local_rank)
    out = Path(cfg.logging.out)
    sch = cfg.schedule
    if sch.batch % dd.world:
        raise SclleError(f"schedule.batch {sch.batch} must be divisible by the {dd.world} DDP processes")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_amp = cfg.optim.amp == "bf16" and device.type == "cuda"
    if cfg.optim.amp not in ("off", "bf16"):
        raise SclleError(f"optim.amp must be 'off' or 'bf16', got {cfg.optim.amp!r}")

    seed_everything(cfg.seed)
    net = init_enhancer(cfg).to(device).train()
    objective = SCLObjective(cfg.loss, vgg=vgg, vgg_weights=cfg.model.vgg_weights).to(device)
    prior = _build_prior(cfg, device)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )

    # ---- resume
    start_step = 0
    ckpt_file: Path | None = None
    if resume:
        ckpt_file = find_latest_checkpoint(out) if resume is True else Path(resume)  # type: ignore[arg-type]
    if ckpt_file is not None:
        ckpt = load_checkpoint(ckpt_file)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_step = int(ckpt["step"])
        set_rng_state(ckpt["rng"])
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
        fp = _vgg_fingerprint(objective.vgg)
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
    _atomic_torch_save(ckpt, path)
    keep = max(1, cfg.logging.keep_ckpts)
    older = sorted((out / "checkpoints").glob("step_*.pt"))
    for p in older[:-keep]:
        if p != path:
            p.unlink(missing_ok=True)
    return path

"""Train the CamVid DeepLabv3+ that serves as SCL-LLE's frozen semantic prior.

Built for a short GPU run: the whole split is preloaded to the device as uint8 tensors, augmentation
(random scale 0.5-2, crop, flip, optional darkening) runs batched on the device, the forward pass uses
bf16 autocast and channels_last, and ``time_budget_min`` shrinks the schedule after the first epoch so
the LR still decays to zero within the budget, then exports the best-on-val model. The same code runs
(slowly) on CPU.

Usage::

    python -m sclle.train.segmentation --config configs/segmentation_gpu.yaml \
        --data-root ../shared/data/camvid --out runs/seg --time-budget-min 4
    sclle train-seg --config configs/segmentation.yaml --data-root ../shared/data/camvid --out runs/seg

Outputs in ``out``: ``last.pt`` (every epoch, for ``--resume``), ``best.pt``, ``log.csv``, ``tb/``
(TensorBoard) and the export ``<name>.safetensors`` (fp16) + ``<name>.json`` (classes, val/test
per-class IoU, recipe command).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sclle.core.device import resolve_device
from sclle.core.files import atomic_save, write_json
from sclle.data.camvid import CLASS_NAMES, IGNORE_INDEX, CamVid
from sclle.data.seg_transforms import random_darken, random_scale_crop_flip
from sclle.errors import SclleError
from sclle.metrics.segmentation import SegConfusion, segmenter_confusion
from sclle.models.segmentation import (
    DEFAULT_SEGMENTER,
    DeepLabV3Plus,
    deeplabv3plus,
    load_segmenter,
    save_segmenter,
    segmenter_metadata,
)


@dataclass
class SegTrainConfig:
    """Everything a run depends on; loadable from YAML (keys = field names)."""

    data_root: str = "../shared/data/camvid"
    out: str = "runs/seg"
    name: str = DEFAULT_SEGMENTER
    backbone: str = "efficientnet-lite0"
    pretrained_backbone: bool = True
    init_from: str | None = None  # fine-tune: start from these weights (registry name or file)
    epochs: int = 40
    batch_size: int = 8
    crop: tuple[int, int] = (352, 480)
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: bool = True
    darken_prob: float = 0.0  # optional robustness augmentation (x ** gamma * exposure)
    darken_gamma_range: tuple[float, float] = (1.5, 5.0)
    lr: float = 1e-3  # decoder / head
    encoder_lr_mult: float = 0.1  # pretrained encoder gets lr * this
    weight_decay: float = 1e-4
    schedule: str = "poly"  # "poly" (power 0.9) or "cosine"
    warmup_steps: int = 50
    class_weight_power: float = 0.0  # > 0: CE weights (median_freq / freq) ** power from train labels
    eval_every: int = 1
    eval_batch_size: int = 8
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast (CUDA only)
    channels_last: bool = True  # CPU too: 1.5x faster training steps there (BENCHMARKS.md)
    compile: bool = False
    workers: int = 2  # DataLoader workers for decoding the images once
    seed: int = 0
    max_steps: int | None = None  # stop early (smoke tests)
    limit_train: int | None = None
    limit_val: int | None = None
    time_budget_min: float | None = None
    export: bool = True
    eval_test: bool = True
    resume: bool = False
    progress: bool = True
    log_every: int = 10
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, **overrides) -> SegTrainConfig:
        data: dict = {}
        if path is not None:
            import yaml

            p = Path(path)
            if not p.is_file():
                raise SclleError("config file not found", p)
            try:
                data = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as exc:
                raise SclleError(f"invalid YAML ({str(exc).splitlines()[0]})", p) from exc
            if not isinstance(data, dict):
                raise SclleError("config must be a mapping of field: value", p)
        data.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SclleError(f"unknown segmentation config keys {unknown}; known: {', '.join(sorted(known))}")
        for key in ("crop", "scale_range", "darken_gamma_range"):
            if key in data:
                data[key] = tuple(data[key])
        cfg = cls(**data)
        if cfg.schedule not in ("poly", "cosine"):
            raise SclleError(f"schedule must be poly or cosine, got {cfg.schedule!r}")
        return cfg


class _Uint8(Dataset):
    def __init__(self, ds: CamVid, limit: int | None) -> None:
        self.ds, self.n = ds, len(ds) if limit is None else min(limit, len(ds))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ds.get_uint8(i)


class _NoWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _as_list(batch: list) -> list:
    return batch


def preload(root: str | Path, split: str, limit: int | None, workers: int, device: torch.device):
    """Decode a split once into (N,3,H,W) uint8 images and (N,H,W) uint8 labels on ``device``."""
    ds = _Uint8(CamVid(root, split), limit)
    loader = DataLoader(ds, batch_size=16, num_workers=workers, collate_fn=_as_list)
    imgs, lbls = [], []
    for batch in loader:
        for im, lb in batch:
            imgs.append(im)
            lbls.append(lb)
    sizes = {tuple(i.shape) for i in imgs}
    if len(sizes) != 1:
        raise SclleError(
            f"CamVid {split}: images differ in size {sorted(sizes)[:3]}; training needs one size"
        )
    return torch.stack(imgs).to(device), torch.stack(lbls).to(device)


def evaluate_tensors(model, imgs, lbls, *, batch_size: int, amp: bool, channels_last: bool) -> SegConfusion:
    """Confusion matrix of ``model`` over preloaded uint8 tensors (full resolution, no augmentation)."""

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, imgs.shape[0], batch_size):
            x = imgs[i : i + batch_size].float() / 255.0
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, lbls[i : i + batch_size]

    return segmenter_confusion(model, batches(), len(CLASS_NAMES), device=imgs.device, amp=amp)


def _class_weights(lbls: torch.Tensor, power: float) -> torch.Tensor | None:
    if power <= 0:
        return None
    counts = torch.bincount(lbls[lbls != IGNORE_INDEX].long().flatten(), minlength=len(CLASS_NAMES)).double()
    freq = counts / counts.sum()
    w = (freq.median() / freq.clamp(min=1e-8)) ** power
    return (w / w.mean()).float()


def _lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    return (1 - t) ** 0.9


def _save_checkpoint(obj: dict, path: Path) -> None:
    atomic_save(path, lambda tmp: torch.save(obj, tmp))


def train_segmenter(cfg: SegTrainConfig) -> Path:
    """Train, select on val mIoU, export ``<out>/<name>.safetensors`` (+ JSON); returns the export path
    (or ``best.pt`` when ``cfg.export`` is False)."""
    t_start = time.monotonic()
    dev = resolve_device(cfg.device)  # a missing CUDA/MPS device is its one-line SclleError
    amp = cfg.amp and dev.type == "cuda"
    cl = cfg.channels_last  # also on CPU: 1.5x faster steps for the depthwise convs (BENCHMARKS.md)
    torch.manual_seed(cfg.seed)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    train_x, train_y = preload(cfg.data_root, "train", cfg.limit_train, cfg.workers, dev)
    val_x, val_y = preload(cfg.data_root, "val", cfg.limit_val, cfg.workers, dev)
    n = train_x.shape[0]
    steps_per_epoch = max(1, n // cfg.batch_size)
    bs = min(cfg.batch_size, n)

    model = deeplabv3plus(  # ImageNet weights only when nothing overwrites them below
        num_classes=len(CLASS_NAMES),
        backbone=cfg.backbone,
        pretrained_backbone=cfg.pretrained_backbone and cfg.init_from is None,
    )
    if cfg.init_from is not None and not (cfg.resume and (out / "last.pt").is_file()):
        init = load_segmenter(cfg.init_from)
        if init.backbone != cfg.backbone or init.num_classes != len(CLASS_NAMES):
            raise SclleError(
                f"--init-from {cfg.init_from}: a {init.backbone}/{init.num_classes}-class model, "
                f"the config wants {cfg.backbone}/{len(CLASS_NAMES)} classes"
            )
        model.load_state_dict(init.state_dict())
        tqdm.write(f"fine-tuning from {cfg.init_from}")
    model = model.to(dev)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    enc = [p for p in model.encoder.parameters()]
    enc_ids = {id(p) for p in enc}
    rest = [p for p in model.parameters() if id(p) not in enc_ids]

    def groups(params, lr):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        return [
            {"params": decay, "lr": lr, "base_lr": lr, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": lr, "base_lr": lr, "weight_decay": 0.0},
        ]

    opt = torch.optim.AdamW(groups(enc, cfg.lr * cfg.encoder_lr_mult) + groups(rest, cfg.lr))
    weights = _class_weights(train_y, cfg.class_weight_power)
    weights = None if weights is None else weights.to(dev)
    fwd = torch.compile(model) if cfg.compile else model

    epochs = cfg.epochs
    total_steps = epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    start_epoch, step, best_miou, best_epoch = 0, 0, -1.0, -1
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume and last_path.is_file():
        ck = torch.load(last_path, map_location=dev, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step = ck["epoch"] + 1, ck["step"]
        best_miou, best_epoch = ck["best_miou"], ck["best_epoch"]
        tqdm.write(f"resumed from {last_path} at epoch {start_epoch}, step {step}")
    elif cfg.resume:
        tqdm.write(f"--resume: no {last_path}, starting fresh")

    try:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(out / "tb"))
    except ImportError:  # tensorboard not installed (e.g. a bare GPU box): CSV log only
        tqdm.write("tensorboard not installed: logging to log.csv only")
        tb = _NoWriter()
    log_path = out / "log.csv"
    new_log = not (cfg.resume and log_path.is_file())
    log_fh = log_path.open("w" if new_log else "a", newline="")
    log = csv.writer(log_fh)
    if new_log:
        log.writerow(["epoch", "step", "train_loss", "val_miou", "val_pixel_acc", "lr", "elapsed_s"])

    budget_s = None if cfg.time_budget_min is None else 60.0 * cfg.time_budget_min
    reserve_s = 0.0  # time kept for final eval + export, measured from the first validation
    gen = torch.Generator(device=dev).manual_seed(cfg.seed + start_epoch)
    stop = False
    warm_steps = 0
    epoch = start_epoch - 1
    max_epochs, max_total_steps = epochs, total_steps
    for epoch in range(start_epoch, epochs):
        t_epoch = t_warm = time.monotonic()
        eval_s = 0.0
        model.train()
        perm = torch.randperm(n, device=dev, generator=gen)
        running, seen = 0.0, 0
        bar = tqdm(
            range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not cfg.progress, leave=False
        )
        for i in bar:
            if step >= total_steps:
                stop = True
                break
            if budget_s is not None and time.monotonic() - t_start > budget_s - reserve_s:
                stop = True
                tqdm.write("time budget reached: stopping and exporting the best model so far")
                break
            idx = perm[(i * bs) % n : (i * bs) % n + bs]
            if idx.numel() < bs:
                idx = torch.cat([idx, perm[: bs - idx.numel()]])
            x, y = random_scale_crop_flip(
                train_x[idx],
                train_y[idx],
                tuple(cfg.crop),
                scale_range=tuple(cfg.scale_range),
                hflip=cfg.hflip,
                generator=gen,
            )
            x = random_darken(
                x, prob=cfg.darken_prob, gamma_range=tuple(cfg.darken_gamma_range), generator=gen
            )
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            factor = _lr_factor(step, total_steps, cfg.warmup_steps, cfg.schedule)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = fwd(x)
            loss = F.cross_entropy(logits.float(), y, weight=weights, ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if i == 2 and epoch == start_epoch:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t_warm, warm_steps = time.monotonic(), 3  # exclude cudnn autotuning from the estimate
            if step % cfg.log_every == 0 or i == 0:
                lv = float(loss.detach())
                running += lv
                seen += 1
                bar.set_postfix(loss=f"{lv:.3f}")
                tb.add_scalar("train/loss", lv, step)
                tb.add_scalar("train/lr", opt.param_groups[2]["lr"], step)
        bar.close()
        train_loss = running / max(seen, 1)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_eval = time.monotonic()
        val_miou = val_acc = float("nan")
        is_last = stop or epoch == epochs - 1 or step >= total_steps
        timed_first = budget_s is not None and epoch == start_epoch  # measure eval cost for the budget
        if (epoch + 1) % cfg.eval_every == 0 or is_last or timed_first:
            conf = evaluate_tensors(
                model, val_x, val_y, batch_size=cfg.eval_batch_size, amp=amp, channels_last=cl
            )
            val_miou, val_acc = conf.miou(), conf.pixel_accuracy()
            tb.add_scalar("val/miou", val_miou, step)
            for c, v in conf.per_class_iou(CLASS_NAMES, 5).items():
                tb.add_scalar(f"val_iou/{c}", v, step)
            if val_miou > best_miou:
                best_miou, best_epoch = val_miou, epoch
                _save_checkpoint({"model": model.state_dict(), "meta": {"backbone": cfg.backbone}}, best_path)
            # final val + test eval + export ~ (1 + test/val size ratio) val evals, plus a margin
            eval_s = time.monotonic() - t_eval
            reserve_s = max(reserve_s, 4.0 * eval_s + 20.0)
        elapsed = time.monotonic() - t_start
        log.writerow(
            [
                epoch,
                step,
                f"{train_loss:.5f}",
                f"{val_miou:.5f}",
                f"{val_acc:.5f}",
                f"{opt.param_groups[2]['lr']:.3g}",
                f"{elapsed:.1f}",
            ]
        )
        log_fh.flush()
        tqdm.write(
            f"epoch {epoch + 1}: loss {train_loss:.4f}  val mIoU {val_miou:.4f}  best {best_miou:.4f}  "
            f"({elapsed:.0f}s)"
        )
        # After the first epoch of a timed run, fit the schedule into the budget so the LR still decays;
        # fit again after the second: the first carries one-off costs (cuDNN autotuning, allocator
        # warm-up) that made a GPU run stop at 19 of ~100 affordable epochs.
        if budget_s is not None and epoch in (start_epoch, start_epoch + 1) and not stop:
            done = steps_per_epoch - (warm_steps if t_warm > t_epoch else 0)
            train_s = (t_eval - t_warm) * steps_per_epoch / max(1, done)
            per_epoch = train_s + eval_s / cfg.eval_every + 0.1  # + checkpoint write
            left = budget_s - reserve_s - (time.monotonic() - t_start)
            fit = min(max_epochs, epoch + 1 + max(0, int(left // per_epoch)))
            if epoch == start_epoch and left > 0:
                fit = min(max_epochs, max(fit, epoch + 2))  # keep one more epoch to measure again
            if fit != epochs:
                tqdm.write(
                    f"time budget: {per_epoch:.1f}s/epoch -> training {fit} epochs instead of {epochs}"
                )
                epochs = fit
                total_steps = min(max_total_steps, epochs * steps_per_epoch)
        _save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch,
                "step": step,
                "best_miou": best_miou,
                "best_epoch": best_epoch,
                "epochs": epochs,
                "total_steps": total_steps,
                "config": dataclasses.asdict(cfg),
                "meta": {"backbone": cfg.backbone},
            },
            last_path,
        )
        if stop or epoch >= epochs - 1 or step >= total_steps:
            break
    log_fh.close()
    tb.close()
    if not best_path.is_file():
        _save_checkpoint({"model": model.state_dict(), "meta": {"backbone": cfg.backbone}}, best_path)
    if not cfg.export:
        return best_path
    return export_segmenter(
        best_path,
        cfg,
        epochs_trained=epoch + 1,
        steps=step,
        best_epoch=best_epoch,
        train_seconds=time.monotonic() - t_start,
        val=(val_x, val_y),
    )


def export_segmenter(
    checkpoint: Path,
    cfg: SegTrainConfig,
    *,
    epochs_trained: int,
    steps: int,
    best_epoch: int,
    train_seconds: float,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Path:
    """fp16 safetensors + JSON metadata; the scores are measured on the *exported* (fp16-rounded) weights."""
    dev = resolve_device(cfg.device)
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = DeepLabV3Plus(backbone=cfg.backbone, num_classes=len(CLASS_NAMES))
    model.load_state_dict(ck["model"])
    path = Path(cfg.out) / f"{cfg.name}.safetensors"
    save_segmenter(model, path, {})
    exported = load_segmenter(path, device=dev)
    amp = cfg.amp and dev.type == "cuda"
    vx, vy = val if val is not None else preload(cfg.data_root, "val", cfg.limit_val, cfg.workers, dev)
    vconf = evaluate_tensors(exported, vx, vy, batch_size=cfg.eval_batch_size, amp=amp, channels_last=False)
    meta = {
        "name": cfg.name,
        "architecture": "DeepLabv3+ (segmentation_models_pytorch decoder, output stride 16)",
        "backbone": cfg.backbone,
        "num_classes": len(CLASS_NAMES),
        "classes": list(CLASS_NAMES),
        "ignore_index": IGNORE_INDEX,
        "input": "float32 (B,3,H,W) RGB in [0,1]; normalisation inside the model",
        "dataset": "CamVid (SegNet 11-class version, 480x360)",
        "val": vconf.summary(CLASS_NAMES),
        "recipe": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "config": dataclasses.asdict(cfg),
        "epochs_trained": epochs_trained,
        "best_epoch": best_epoch + 1,
        "steps": steps,
        "train_seconds": round(train_seconds, 1),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "weights_dtype": "float16 (loaded as float32)",
    }
    if cfg.eval_test:
        tx, ty = preload(cfg.data_root, "test", None, cfg.workers, dev)
        tconf = evaluate_tensors(
            exported, tx, ty, batch_size=cfg.eval_batch_size, amp=amp, channels_last=False
        )
        meta["test"] = tconf.summary(CLASS_NAMES)
    # save_segmenter wrote the file's own facts (sha256, input scale) beside it: keep them.
    write_json(path.with_suffix(".json"), {**segmenter_metadata(path), **meta}, default=str)
    test = meta.get("test", {}).get("miou", float("nan"))
    tqdm.write(
        f"exported {path} ({path.stat().st_size / 1e6:.1f} MB): val mIoU {meta['val']['miou']:.4f}, "
        f"test mIoU {test:.4f}"
    )
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sclle.train.segmentation", description=__doc__.splitlines()[0]
    )
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--out")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int)
    p.add_argument("--max-steps", dest="max_steps", type=int)
    p.add_argument("--limit-train", dest="limit_train", type=int)
    p.add_argument("--limit-val", dest="limit_val", type=int)
    p.add_argument("--time-budget-min", dest="time_budget_min", type=float)
    p.add_argument("--init-from", dest="init_from", help="start from these weights (name or file)")
    p.add_argument("--class-weight-power", dest="class_weight_power", type=float)
    p.add_argument("--no-pretrained", dest="pretrained_backbone", action="store_const", const=False)
    p.add_argument("--no-test", dest="eval_test", action="store_const", const=False)
    p.add_argument("--resume", action="store_const", const=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    config = args.pop("config")
    try:
        path = train_segmenter(SegTrainConfig.from_yaml(config, **args))
    except SclleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

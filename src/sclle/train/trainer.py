"""The SCL-LLE trainer: only the DCE-Net enhancer learns; VGG-16 and the segmenter stay frozen.

One step (global batch B, split over DDP ranks)::

    low, labels      <- StreetScenes.batch(step)                 random crops, flips, darkening
    pos, neg         <- pool statistics, indices drawn for step  (VGG Grams computed once, cached)
    curves = net(low); enhanced = apply_curves(low, curves)
    seg_logits = prior(enhanced)                                  (if the semantic CE term is on)
    loss = SCLObjective(low, enhanced, curves, labels, seg_logits, pos, neg)["total"]
    Adam step (gradient clipping optional)

What is built (pool, negatives, segmenter, the second pass of scale consistency) is what
``SCLObjective.requirements()`` says, nothing re-derived here. Every random choice of a step is
derived from ``(seed, step)`` (see :mod:`sclle.data.street`), so a run resumed from a checkpoint
continues *exactly* as the uninterrupted run, and N DDP ranks reproduce one process on the
combined batch.

This module runs the loop; the jobs around it live beside it: :mod:`~sclle.train.build` (enhancer,
data, segmenter), :mod:`~sclle.train.pool_stats`, :mod:`~sclle.train.distributed`,
:mod:`~sclle.train.run_folder` (lock, fresh or resume), :mod:`~sclle.train.checkpoint`,
:mod:`~sclle.train.resume`, :mod:`~sclle.train.rng`, :mod:`~sclle.train.logs`,
:mod:`~sclle.train.validate`, :mod:`~sclle.train.export`.

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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from sclle.core.device import rank_device
from sclle.core.weights import NEGLIGIBLE_WEIGHT, flush_subnormals_
from sclle.data.street import StreetScenes
from sclle.errors import SclleError
from sclle.losses.objective import ObjectiveNeeds, SCLObjective
from sclle.models.dce import DCENet
from sclle.train.build import build_prior, build_street, curves_model, init_enhancer, step_losses
from sclle.train.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from sclle.train.config import TrainConfig, save_config
from sclle.train.distributed import (
    DistContext,
    any_rank,
    barrier,
    setup_distributed,
    teardown_distributed,
    wrap_ddp,
)
from sclle.train.export import EXPORT_FORMAT, export_model
from sclle.train.logs import TrainLogger
from sclle.train.pool_stats import RunPool
from sclle.train.resume import RESUME_SAFE_KEYS, check_resume_config, config_changes, resume_from
from sclle.train.rng import rng_state, seed_everything, set_rng_state
from sclle.train.run_folder import RUN_ENTRIES, RunLock, RunPlan, clear_run, plan_run, run_files
from sclle.train.stop import StopRequest
from sclle.train.validate import Validator

__all__ = [
    "CHECKPOINT_FORMAT",
    "EXPORT_FORMAT",
    "RESUME_SAFE_KEYS",
    "RUN_ENTRIES",
    "RunLock",
    "StepCallback",
    "check_resume_config",
    "checkpoint_path",
    "clear_run",
    "config_changes",
    "export_model",
    "find_latest_checkpoint",
    "init_enhancer",
    "list_checkpoints",
    "load_checkpoint",
    "rng_state",
    "run_files",
    "seed_everything",
    "set_rng_state",
    "train",
]

#: Called after each optimisation step with (step, losses as floats) on rank 0; tests use it.
StepCallback = Callable[[int, dict[str, float]], None]


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
    dd = setup_distributed(cfg.device)
    plan: RunPlan | None = None
    try:
        device = rank_device(cfg.device, dd.local_rank)
        if cfg.schedule.batch % dd.world:
            raise SclleError(
                f"schedule.batch {cfg.schedule.batch} must be divisible by the {dd.world} DDP processes"
            )
        plan = plan_run(cfg, dd, device, resume, overwrite)
        return _run(
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
        teardown_distributed(dd)


@dataclass
class _Setup:
    """Everything the steps of one run use, built once."""

    cfg: TrainConfig
    dd: DistContext
    device: torch.device
    needs: ObjectiveNeeds
    net: DCENet
    model: nn.Module  # net, or net with the second-scale pass, DDP-wrapped on several ranks
    objective: SCLObjective
    prior: nn.Module | None
    optimizer: torch.optim.Optimizer
    street: StreetScenes
    pool: RunPool | None
    use_amp: bool
    start_step: int


def _build(
    cfg: TrainConfig,
    dd: DistContext,
    device: torch.device,
    plan: RunPlan,
    *,
    force: bool,
    vgg: nn.Module | None,
) -> _Setup:
    """Build the run in a fixed order (it fixes what the seeded RNG draws), resuming if ``plan`` says so."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.seed)
    net = init_enhancer(cfg).to(device).train()
    objective = SCLObjective(cfg.loss, vgg=vgg, vgg_weights=cfg.model.vgg_weights).to(device)
    needs = objective.requirements()
    prior = build_prior(cfg, needs, device)
    optimizer = torch.optim.Adam(
        net.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    start_step = 0
    if plan.candidates:
        ckpt, ckpt_file = resume_from(
            plan.candidates, explicit=plan.explicit, net=net, optimizer=optimizer, main=dd.main
        )
        check_resume_config(ckpt, ckpt_file, cfg, force=force, main=dd.main)
        start_step = int(ckpt["step"])
        del ckpt
    street = build_street(cfg, device)
    pool = RunPool.load(cfg, objective.vgg, needs, dd, device) if needs.pool else None
    return _Setup(
        cfg=cfg,
        dd=dd,
        device=device,
        needs=needs,
        net=net,
        model=wrap_ddp(curves_model(net, needs), dd, device),
        objective=objective,
        prior=prior,
        optimizer=optimizer,
        street=street,
        pool=pool,
        use_amp=cfg.optim.amp == "bf16" and device.type == "cuda",
        start_step=start_step,
    )


@dataclass
class _StepResult:
    losses: dict[str, torch.Tensor]
    low: torch.Tensor
    enhanced: torch.Tensor


def _train_step(s: _Setup, step: int) -> _StepResult:
    """One optimisation step on this rank's share of the batch of ``step``."""
    sch = s.cfg.schedule
    batch = s.street.batch(step, sch.batch, rank=s.dd.rank, world_size=s.dd.world)
    pos, neg = s.pool.draw(step) if s.pool is not None else (None, None)
    with torch.autocast(device_type=s.device.type, dtype=torch.bfloat16, enabled=s.use_amp):
        losses, enhanced = step_losses(
            s.model, s.needs, s.objective, s.prior, batch.low, batch.labels, pos, neg
        )
    s.optimizer.zero_grad(set_to_none=True)
    losses["total"].float().backward()
    if s.cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(s.net.parameters(), s.cfg.optim.grad_clip)
    s.optimizer.step()
    # dead channels' weights decay towards zero through the subnormal range, where CPU convolutions
    # take a microcode path (7x slower steps seen on an Intel Xeon); they cannot matter, so zero them
    # (GPUs flush subnormals in hardware; there the count would only cost a device sync per tensor)
    if s.device.type == "cpu":
        flush_subnormals_(s.net, below=NEGLIGIBLE_WEIGHT)
    return _StepResult(losses, batch.low, enhanced)


class _Monitor:
    """Rank 0's side of the loop: progress bar, logs, sample grids, validation, divergence check."""

    def __init__(self, s: _Setup, callback: StepCallback | None, t_start: float) -> None:
        cfg = s.cfg
        self.cfg, self.t_start, self.callback = cfg, t_start, callback
        self.out = Path(cfg.logging.out)
        self.logger: TrainLogger | None = None
        self.validator: Validator | None = None
        if s.dd.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.yaml")
            self.logger = TrainLogger(self.out, cfg, s.start_step)
            self.validator = Validator(cfg, s.device)
        self.scores: dict[str, float] = {}
        self.scores_step = -1
        self.bar = tqdm(
            total=cfg.schedule.steps,
            initial=s.start_step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not (s.dd.main and cfg.logging.progress),
        )

    def after_step(self, step: int, r: _StepResult, net: DCENet, lr: float) -> None:
        logger, lg = self.logger, self.cfg.logging
        if logger is None:
            return
        logger.accumulate(r.losses)
        self.bar.update(1)
        if step % lg.log_every == 0 or step == self.cfg.schedule.steps:
            vals = logger.flush(step, time.perf_counter() - self.t_start, lr)
            if not math.isfinite(vals.get("total", 0.0)):
                raise SclleError(f"training diverged at step {step}: total loss {vals['total']}")
            self.bar.set_postfix(loss=f"{vals.get('total', float('nan')):.4g}")
        if self.callback is not None:
            self.callback(step, {k: float(v.detach()) for k, v in r.losses.items()})
        if lg.image_every and step % lg.image_every == 0:
            logger.images(step, r.low, r.enhanced)
        if self.validator and lg.val_every and step % lg.val_every == 0:
            self.scores, self.scores_step = self.validator(net), step
            logger.validation(step, self.scores)

    def finish(self, net: DCENet, step: int) -> None:
        """Validate the final weights (unless just done) and export them."""
        if self.logger is None:
            return
        if self.validator and self.scores_step != step:
            self.scores = self.validator(net)
            self.logger.validation(step, self.scores)
        export_model(
            net, self.out / "export", self.cfg.logging.name, cfg=self.cfg, step=step, scores=self.scores
        )
        self.logger.close()


def _run(
    cfg: TrainConfig,
    dd: DistContext,
    device: torch.device,
    plan: RunPlan,
    *,
    force: bool,
    time_budget_min: float | None,
    vgg: nn.Module | None,
    callback: StepCallback | None,
) -> Path:
    t_start = time.perf_counter()
    s = _build(cfg, dd, device, plan, force=force, vgg=vgg)
    out = Path(cfg.logging.out)
    monitor = _Monitor(s, callback, t_start)
    budget_s = None if time_budget_min is None else 60.0 * float(time_budget_min)
    steps, ckpt_every = cfg.schedule.steps, cfg.logging.ckpt_every
    step = s.start_step
    stop = StopRequest()
    with stop:
        try:
            while step < steps:
                result = _train_step(s, step)
                step += 1
                monitor.after_step(step, result, s.net, s.optimizer.param_groups[0]["lr"])
                if ckpt_every and step % ckpt_every == 0 and step < steps:
                    save_checkpoint(s.net, s.optimizer, step, cfg, out, main=dd.main)
                over = budget_s is not None and time.perf_counter() - t_start > budget_s
                if any_rank(over or stop.requested, dd, device):
                    if dd.main:
                        why = (
                            f"{stop.signal_name} received" if stop.requested
                            else f"time budget of {time_budget_min} min reached"
                        )  # fmt: skip
                        monitor.bar.write(f"{why} at step {step}; saving a checkpoint and stopping")
                    break
        finally:
            monitor.bar.close()

    final = save_checkpoint(s.net, s.optimizer, step, cfg, out, main=dd.main, final=True)
    monitor.finish(s.net, step)
    barrier(dd)
    return final

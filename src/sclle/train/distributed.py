"""DDP for the trainer: process-group setup from torchrun's environment and rank helpers (the device per rank
is :func:`sclle.core.device.rank_device`).

One process (no ``WORLD_SIZE``, or 1) needs none of it: every helper then does nothing, so the
training loop reads the same for one process and for N.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Where this process stands in the run (rank 0 alone writes files and logs)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    #: this process created the process group, so it destroys it at the end.
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> DistContext:
    """Join the process group torchrun described (NCCL for CUDA, gloo otherwise); one process: nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if dist.is_initialized():
        return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)
    wants_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if wants_cuda else "gloo"
    if wants_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank=rank, world=world, local_rank=local, initialised_here=True)


def teardown_distributed(dd: DistContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if dd.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, dd: DistContext, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (so all ranks stop, or refuse, together)."""
    if dd.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item() > 0


def barrier(dd: DistContext) -> None:
    """Wait for every rank (one process: return at once)."""
    if dd.world > 1:
        dist.barrier()


def wrap_ddp(model: nn.Module, dd: DistContext, device: torch.device) -> nn.Module:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` when there are several ranks."""
    if dd.world <= 1:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``net`` itself)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net

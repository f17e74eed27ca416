"""Split one batch over the processes of a ``torchrun`` job (one GPU per rank where there are GPUs).

``torchrun --nproc-per-node N -m sclle enhance INPUTS -o OUT`` starts N copies of the command with
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set (several nodes work the same way, ranks being global).
Rank 0 plans the whole batch (discovery, output names, which outputs already exist) and sends the list
of jobs to every rank, so all ranks shard the *same* list even while outputs or inputs appear meanwhile;
rank ``r`` then takes every ``WORLD_SIZE``-th job of the natural-sorted list, starting at ``r``. At the
end the results are gathered, so that rank 0 prints one summary and every rank knows whether any failed.

Resuming needs nothing more: outputs are written atomically (temporary file, then an exclusive rename),
so an existing output is a finished one and a rerun skips it; a killed rank leaves at most hidden
temporary files, which are never taken for outputs, and its unfinished inputs are redone.

The process group (gloo) only carries these few Python objects, never tensors, so it is gloo on GPUs
too: NCCL would add a device round trip and a CUDA context per rank for nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch

from sclle.core.files import natural_sorted
from sclle.errors import SclleError

T = TypeVar("T")

#: Ranks meet only at the start and the end of a batch; one may finish hours after another.
GROUP_TIMEOUT = timedelta(hours=72)


@dataclass(frozen=True)
class Shard:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise SclleError(
                f"bad torchrun environment: RANK={self.rank}, WORLD_SIZE={self.world_size}, "
                f"LOCAL_RANK={self.local_rank}"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Shard:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (as torchrun sets them); absent = one process."""
        env = os.environ if env is None else env
        try:
            rank = int(env.get("RANK", "0"))
            world = int(env.get("WORLD_SIZE", "1"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise SclleError(
                "bad torchrun environment: RANK, WORLD_SIZE and LOCAL_RANK must be integers"
            ) from None
        return cls(rank, world, local)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """The rank that plans the batch and prints the summary."""
        return self.rank == 0

    def select(self, jobs: Sequence[T], key=str) -> list[T]:
        """This rank's share of ``jobs``: every ``world_size``-th of their natural order, from ``rank``.

        Round-robin over the sorted list keeps the ranks' loads equal whatever the files' sizes trend.
        """
        return natural_sorted(jobs, key=key)[self.rank :: self.world_size]

    def device(self, requested: str = "auto") -> str:
        """One GPU per rank: ``auto``/``cuda`` become ``cuda:<LOCAL_RANK>`` where CUDA exists."""
        if self.distributed and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested


@contextmanager
def process_group(shard: Shard) -> Iterator[None]:
    """A gloo group for the duration of a sharded batch (nothing for one process, or one already open)."""
    dist = torch.distributed
    if not shard.distributed or dist.is_initialized():
        yield
        return
    if not dist.is_available():
        raise SclleError("this PyTorch build has no torch.distributed; run without torchrun")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise SclleError(
            f"WORLD_SIZE={shard.world_size} but {' and '.join(missing)} unset: start sharded runs with torchrun"
        )
    dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world_size, timeout=GROUP_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def share(shard: Shard, obj: T | None) -> T:
    """Rank 0's ``obj``, on every rank (``obj`` itself for one process)."""
    if not shard.distributed:
        assert obj is not None
        return obj
    box = [obj if shard.main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(shard: Shard, obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for one process)."""
    if not shard.distributed:
        return [obj]
    out: list[T | None] = [None] * shard.world_size
    torch.distributed.all_gather_object(out, obj)
    return out  # type: ignore[return-value]

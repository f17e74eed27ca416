"""One device resolver for every command (enhance, evaluate, train, benchmarks).

``auto`` picks CUDA, then MPS, then the CPU; asking for a device that is absent is a one-line error,
not a traceback from deep inside torch.
"""

from __future__ import annotations

import torch

from sclle.errors import SclleError

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` into an available ``torch.device``."""
    if isinstance(device, torch.device):
        device = str(device)
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise SclleError("device mps asked for, but MPS is not available")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SclleError(f"device {name} asked for, but no CUDA GPU is available")
        if name != "cuda":
            idx = name.split(":", 1)[1]
            if not idx.isdigit():
                raise SclleError(f"bad device {name!r}; use {DEVICE_HELP}")
            n = torch.cuda.device_count()
            if int(idx) >= n:
                raise SclleError(f"device {name} asked for, but only {n} CUDA GPU(s) are visible")
        return torch.device(name)
    raise SclleError(f"unknown device {device!r}; use {DEVICE_HELP}")


def rank_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    """:func:`resolve_device`, with a bare ``cuda`` pinned to one GPU per process (``LOCAL_RANK`` modulo the
    visible GPUs): DDP and sharded batch jobs need each rank on its own device."""
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return resolved


def flush_denormals() -> bool:
    """Make this thread (and the CPU worker threads created after it) flush subnormal floats to zero.

    Subnormal numbers take a microcode path on x86 CPUs: a training step of the CPU recipe took 13-16 s
    instead of 2.1 s on an Intel Xeon once dead channels' weights had decayed towards that range.
    The flag is per thread and OpenMP workers copy it when they are created, so call this before the
    first parallel torch operation of the process (the CLI's training commands do). Returns whether the
    CPU supports it. Process-wide state: the library's inference path does not set it (it zeroes
    negligible weights on load instead).
    """
    return bool(torch.set_flush_denormal(True))

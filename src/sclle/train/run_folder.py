"""The run folder: one run per folder, held under a lock, and the decision fresh start or resume.

A fresh run refuses a folder that holds another run unless ``overwrite`` (which removes exactly the
run's own entries, :data:`RUN_ENTRIES`); ``.sclle-train.lock`` is held while a run goes, so a second
run into the folder is refused instead of mixing files with the first.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sclle.errors import SclleError
from sclle.train.checkpoint import list_checkpoints
from sclle.train.config import TrainConfig
from sclle.train.distributed import DistContext, any_rank
from sclle.train.logs import say

#: What a run writes into its folder; a fresh run refuses a folder holding any of them (unless
#: ``overwrite``, which removes exactly these and nothing else the folder holds).
RUN_ENTRIES = ("checkpoints", "export", "log.csv", "val.csv", "config.yaml", "samples", "tb")
LOCK_NAME = ".sclle-train.lock"


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


class RunLock:
    """An advisory lock on ``out/.sclle-train.lock`` held for the whole run (rank 0).

    Two runs into one folder would otherwise both pass the "folder holds another run" check and then
    replace each other's files. The OS drops the lock when the process dies (even by kill -9), so a
    crashed run never leaves a stale lock. The file itself stays: removing it would let two runs
    lock two different files of the same name.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
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
class RunPlan:
    """Where a run starts: checkpoints to try (newest first) and the rank-0 folder lock."""

    candidates: list[Path]
    explicit: bool
    lock: RunLock | None = None


def plan_run(
    cfg: TrainConfig, dd: DistContext, device: torch.device, resume: bool | str | Path, overwrite: bool
) -> RunPlan:
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
    plan = RunPlan(candidates, explicit)
    error: SclleError | None = None
    if dd.main:
        try:
            plan.lock = RunLock(out)
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
                say("note", f"{out}: removed the previous run ({', '.join(existing)}) (--overwrite)")
        except SclleError as exc:
            error = exc
    # every rank stops when rank 0 refuses (else the others would wait forever)
    if any_rank(error is not None, dd, device) and error is None:
        error = SclleError("rank 0 refused the run folder (see its error)", out)
    if error is not None:
        if plan.lock is not None:
            plan.lock.release()
        raise error
    return plan

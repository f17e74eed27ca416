"""What a run reports: ``note:``/``warning:`` lines, ``log.csv``, ``val.csv``, TensorBoard and sample grids.

Only rank 0 logs. A resumed run first drops the rows logged after its checkpoint, so the files read
as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from pathlib import Path

import torch

from sclle import imageio
from sclle.core.files import atomic_write
from sclle.train.config import TrainConfig


def say(kind: str, message: str) -> None:
    """One ``note: ...`` / ``warning: ...`` line on stderr (rank 0 calls it), as the other commands print."""
    print(f"{kind}: {' '.join(message.split())}", file=sys.stderr, flush=True)


class TrainLogger:
    """CSV + TensorBoard on rank 0; buffers per-step losses on device and averages them at log steps."""

    def __init__(self, out: Path, cfg: TrainConfig, start_step: int) -> None:
        self.out = out
        self.csv_path = out / "log.csv"
        self.val_path = out / "val.csv"
        self.keys: list[str] | None = None
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        for p in (self.csv_path, self.val_path):
            truncate_csv(p, start_step)
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
            else:
                self.keys = _widen_csv(self.csv_path, self.keys)
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


def truncate_csv(path: Path, step: int) -> None:
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


def _widen_csv(path: Path, keys: list[str]) -> list[str]:
    """Make ``path``'s header hold ``keys`` as well (a forced resume may switch a loss term on or off):
    the file is rewritten with the union of the columns, empty where a row has no value. Returns the
    column order to write new rows in."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    old = rows[0][3:] if rows else []
    union = sorted(dict.fromkeys([*old, *keys]), key=lambda k: (k != "total", k))
    if union == old:
        return old
    index = {k: i for i, k in enumerate(old)}
    body = [
        r[:3] + [r[3 + index[k]] if k in index and 3 + index[k] < len(r) else "" for k in union]
        for r in rows[1:]
    ]
    text = io.StringIO()
    csv.writer(text).writerows([["step", "seconds", "lr", *union], *body])
    atomic_write(path, text.getvalue())
    return union

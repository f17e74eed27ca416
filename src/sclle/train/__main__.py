"""``python -m sclle.train --config configs/scl_default.yaml [--out DIR] [--resume] [--set k=v ...]``.

The same as ``sclle train``, without Typer, so that ``torchrun --nproc_per_node N -m sclle.train``
works on a training box.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sclle.errors import SclleError


def run(
    config: str | Path | None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    resume_from: str | Path | None = None,
    overwrite: bool = False,
    force: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    device: str | None = None,
    steps: int | None = None,
    time_budget_min: float | None = None,
) -> Path:
    from sclle.core.device import flush_denormals
    from sclle.train.config import load_config
    from sclle.train.trainer import train

    # before torch's first parallel op, so every CPU worker thread inherits it; it stays on for the rest of
    # the process (a training process: no other work depends on subnormal arithmetic)
    flush_denormals()
    extra = list(overrides)
    if out is not None:
        extra.append(f"logging.out={out}")
    if device is not None:
        extra.append(f"device={device}")
    if steps is not None:
        extra.append(f"schedule.steps={steps}")
    cfg = load_config(config, extra)
    final = train(
        cfg,
        resume=resume_from if resume_from else resume,
        overwrite=overwrite,
        force=force,
        time_budget_min=time_budget_min,
    )
    print(f"final checkpoint: {final}")
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sclle.train", description="Train the SCL-LLE enhancer.")
    p.add_argument("--config", "-c", default=None)
    p.add_argument("--out", "-o", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--resume-from", default=None)
    p.add_argument("--overwrite", action="store_true", help="replace the run already in the run folder")
    p.add_argument("--force", action="store_true", help="resume even if the config changed incompatibly")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--time-budget-min", type=float, default=None)
    a = p.parse_args(argv)
    try:
        run(
            a.config,
            out=a.out,
            resume=a.resume,
            resume_from=a.resume_from,
            overwrite=a.overwrite,
            force=a.force,
            overrides=a.overrides,
            device=a.device,
            steps=a.steps,
            time_budget_min=a.time_budget_min,
        )
    except SclleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

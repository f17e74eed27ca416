"""``sclle train`` and ``sclle prepare-contrast``: thin shells over :mod:`sclle.train` and
:mod:`sclle.data.contrast`."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        config: Path = typer.Option(
            None, "--config", "-c", help="YAML config (e.g. configs/scl_default.yaml)."
        ),
        out: Path = typer.Option(None, "--out", "-o", help="Run folder (overrides logging.out)."),
        resume: bool = typer.Option(
            False, "--resume", help="Continue from the latest checkpoint in the run folder."
        ),
        resume_from: Path = typer.Option(None, "--resume-from", help="Continue from this checkpoint file."),
        overwrite: bool = typer.Option(
            False,
            "--overwrite",
            help="Start afresh in a run folder that holds another run (its files are removed).",
        ),
        force: bool = typer.Option(
            False, "--force", help="Resume even if the config changed in ways that break exact resumption."
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Override a config value: key.path=value (repeatable)."
        ),
        device: str = typer.Option(None, "--device", help="auto | cpu | cuda (overrides the config)."),
        steps: int = typer.Option(None, "--steps", help="Total steps (overrides schedule.steps)."),
        time_budget_min: float = typer.Option(
            None, "--time-budget-min", help="Stop cleanly after this many minutes (checkpoint + export)."
        ),
    ) -> None:
        """Train the SCL-LLE enhancer (DDP: launch with torchrun)."""
        from sclle.train.__main__ import run

        run(
            config,
            out=out,
            resume=resume,
            resume_from=resume_from,
            overwrite=overwrite,
            force=force,
            overrides=set_,
            device=device,
            steps=steps,
            time_budget_min=time_budget_min,
        )

    @app.command("prepare-contrast")
    def prepare_contrast_cmd(
        source: Path = typer.Argument(
            ..., help="Multi-exposure sequences: SICE folder-per-scene or flat + CSV."
        ),
        out: Path = typer.Option(Path(".devdata/contrast_pool"), "--out", "-o", help="Pool folder to write."),
        csv_path: Path = typer.Option(
            None, "--csv", help="file,sequence_id[,mean_gray_0_255] CSV (flat layout)."
        ),
        size: int = typer.Option(256, "--size", help="Short side of the written images."),
        min_frames: int = typer.Option(3, "--min-frames", help="Drop scenes with fewer frames."),
        max_shift: float = typer.Option(
            0.75, "--max-shift", help="Max shift between neighbouring frames (% of side)."
        ),
        min_corr: float = typer.Option(
            0.3, "--min-corr", help="Min structure correlation of neighbouring frames."
        ),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="List dropped scenes and why."),
    ) -> None:
        """Build the contrastive pool (positives, under/over negatives) from exposure sequences."""
        from sclle.data.pool_builder import PoolParams, build_pool

        params = PoolParams(size=size, min_frames=min_frames, max_shift_pct=max_shift, min_corr=min_corr)
        t0 = time.perf_counter()
        meta = build_pool(source, out, csv_path=csv_path, params=params)
        c = meta["counts"]
        typer.echo(
            f"{out}: {c['scenes_kept']} scenes kept, {c['scenes_dropped']} dropped; {c['positives']} positives, "
            f"{c['under']} under / {c['over']} over negatives ({time.perf_counter() - t0:.1f} s)"
        )
        if verbose:
            for d in meta["dropped"]:
                typer.echo(f"  dropped {d['id']}: {d['reason']}")

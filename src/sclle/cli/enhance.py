"""``sclle enhance``: a thin shell over :func:`sclle.enhancement.batch.enhance_files`."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from sclle.enhancement.api import build_engine


def register(app: typer.Typer) -> None:
    @app.command("enhance")
    def enhance_cmd(
        inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
        model: str = typer.Option(
            None, "--model", "-m", help="Registry name (see `sclle models`) or weights file."
        ),
        weights: Path = typer.Option(
            None, "--weights", "-w", help="Local file for the --model registry entry."
        ),
        recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
        strength: float = typer.Option(1.0, min=0.0, max=2.0, help="0 = input unchanged, 1 = model output."),
        fast: bool = typer.Option(
            False, "--fast", help="Estimate curves on a downscaled copy (much faster)."
        ),
        fast_scale: float = typer.Option(
            None, "--fast-scale", help="Downscale for --fast (default: per model)."
        ),
        tile: int = typer.Option(None, "--tile", help="Exact mode in tiles of this size (bounded memory)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
        format: str = typer.Option(None, "--format", "-f", help="Output format (png, jpg, tiff, webp, bmp)."),
        quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG/WebP quality."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
        compare: bool = typer.Option(False, "--compare", help="Also write a side-by-side before/after PNG."),
        suffix: str = typer.Option("", "--suffix", help="Appended to output file names."),
        threads: int = typer.Option(None, "--threads", help="CPU threads for the network (default: all)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Enhance low-light images."""
        if threads:
            torch.set_num_threads(threads)
        scale: bool | float = fast_scale if fast_scale is not None else fast
        engine = build_engine(model, weights=weights, strength=strength, fast=scale, tile=tile, device=device)
        from sclle.enhancement.batch import enhance_files

        res = enhance_files(
            inputs, out, engine, recursive=recursive, format=format, quality=quality,
            overwrite=overwrite, compare=compare, suffix=suffix, progress=not quiet,
        )  # fmt: skip
        for line in res.notes:
            typer.echo(f"note: {line}", err=True)
        for line in res.skipped:
            typer.echo(f"skipped: {line}", err=True)
        for line in res.failed:
            typer.echo(f"failed: {line}", err=True)
        n_img = len(res.written) // (2 if compare else 1)
        typer.echo(
            f"done: {n_img} enhanced, {len(res.skipped)} skipped, {len(res.failed)} failed "
            f"in {res.seconds:.1f} s -> {out}"
        )
        if res.failed:
            raise typer.Exit(1)

"""``sclle enhance``: a thin shell over :func:`sclle.enhancement.batch.enhance_files`."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import typer
from PIL import Image as PILImage

from sclle.enhancement.api import build_engine
from sclle.imageio import DEFAULT_MAX_PIXELS
from sclle.imageio.formats import FORMATS_TEXT, canonical_format

#: More threads than this only oversubscribes the cores (and 100000 made OpenBLAS crash).
MAX_THREADS = 4 * (os.cpu_count() or 1)


def _finite(value: float | None) -> float | None:
    """Out-of-range numbers are usage errors (exit 2); click's ranges let NaN through."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _fast_scale(value: float | None) -> float | None:
    if value is not None and not 0.0 < _finite(value) <= 1.0:
        raise typer.BadParameter(f"{value} is not in (0, 1]")
    return value


def _tile(value: int | None) -> int | None:
    if value is not None and value != 0 and value < 16:
        raise typer.BadParameter(f"{value} is too small: tiles are at least 16 px (0 = never tile)")
    return value


def _format(value: str | None) -> str | None:
    if value is not None and canonical_format(value) is None:
        raise typer.BadParameter(f"unknown format {value!r} (use one of {FORMATS_TEXT})")
    return value


def _suffix(value: str) -> str:
    from sclle.enhancement.batch import check_suffix

    try:
        return check_suffix(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@contextmanager
def _process_settings(threads: int | None) -> Iterator[None]:
    """Set torch's thread count and Pillow's size guard for one command, then put them back.

    Every file is read by :func:`sclle.imageio.read_image`, which refuses images above ``--max-pixels``
    from their header; Pillow's own guard (a warning above ``MAX_IMAGE_PIXELS``, a refusal above twice
    it) would only repeat that with a different number, so it is off meanwhile, as are Pillow's
    warnings about damaged files (each such file is written or named on a ``failed:`` line anyway).
    In-process callers (tests, notebooks) get their global state back.
    """
    threads_before = torch.get_num_threads()
    bomb_limit = PILImage.MAX_IMAGE_PIXELS
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        PILImage.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():  # Pillow's notes on damaged files ("Corrupt EXIF data"...): the
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")  # file reads or fails
            yield
    finally:
        torch.set_num_threads(threads_before)
        PILImage.MAX_IMAGE_PIXELS = bomb_limit


def register(app: typer.Typer) -> None:
    @app.command("enhance")
    def enhance_cmd(
        inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
        out: Path = typer.Option(
            ...,
            "--out",
            "-o",
            file_okay=False,
            help="Output folder (created if missing; may be an input "
            "folder only with --suffix, and no input is ever replaced).",
        ),  # fmt: skip
        model: str = typer.Option(
            None, "--model", "-m", help="Registry name (see `sclle models`) or weights file."
        ),
        weights: Path = typer.Option(
            None, "--weights", "-w", help="Local file for the --model registry entry."
        ),
        recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
        strength: float = typer.Option(
            1.0, min=0.0, max=2.0, callback=_finite, help="0 = input unchanged, 1 = model output."
        ),
        fast: bool = typer.Option(
            False, "--fast", help="Estimate curves on a downscaled copy (much faster)."
        ),
        fast_scale: float = typer.Option(
            None,
            "--fast-scale",
            callback=_fast_scale,
            help="Downscale for --fast, in (0, 1] (default: per model).",
        ),
        tile: int = typer.Option(
            None,
            "--tile",
            callback=_tile,
            help="Tiles of this size, >= 16 (default: automatic above 1 Mpx; 0 = never). Same result.",
        ),
        precision: str = typer.Option(
            "auto",
            "--precision",
            help="Network precision: auto (bf16/fp16 where it keeps >= 60 dB PSNR against fp32), fp32, bf16, fp16.",
        ),  # fmt: skip
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
        format: str = typer.Option(
            None, "--format", "-f", callback=_format, help="Output format (png, jpg, tiff, webp, bmp)."
        ),
        quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG/WebP quality."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
        compare: bool = typer.Option(False, "--compare", help="Also write a side-by-side before/after PNG."),
        suffix: str = typer.Option(
            "", "--suffix", callback=_suffix, help="Appended to output file names (no '/', '\\' or '..')."
        ),
        threads: int = typer.Option(
            None,
            "--threads",
            min=1,
            max=MAX_THREADS,
            help=f"CPU threads for the network, 1..{MAX_THREADS} (default: all cores).",
        ),  # fmt: skip
        parallel: int = typer.Option(
            None,
            "--parallel",
            min=1,
            max=MAX_THREADS,
            help="CPU: images enhanced at once, one thread each (default: one per thread when every image "
            "has at most 4 Mpx, else 1; 1 puts all threads on one image at a time).",
        ),  # fmt: skip
        max_pixels: int = typer.Option(
            DEFAULT_MAX_PIXELS,
            "--max-pixels",
            min=1,
            help="Refuse images with more pixels than this (checked from the file header, before decoding).",
        ),  # fmt: skip
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Enhance low-light images.

        Exit status: 0 when every image was enhanced (or kept because its output existed), 1 when some
        failed (each named on a `failed:` line; the rest were written), 2 for a usage or fatal error.
        A rerun resumes: finished outputs are kept. Under `torchrun --nproc-per-node N -m sclle enhance ...`
        the inputs are split over the N processes (one GPU each where there are GPUs); rank 0 prints the
        summary of all of them and exits 1 (so torchrun does) if any image failed on any rank.
        """
        from sclle.enhancement.shard import Shard

        shard = Shard.from_env()  # several ranks under torchrun: each takes its share, rank 0 reports
        with _process_settings(threads):
            scale = fast_scale if fast_scale is not None else ("auto" if fast else None)
            engine = build_engine(
                model, weights=weights, strength=strength, fast_scale=scale, tile=tile, precision=precision,
                device=shard.device(device),
            )  # fmt: skip
            if model is None and weights is not None and shard.main:
                what = (
                    f"the registered {engine.entry.name!r}"
                    if engine.entry
                    else f"plain {engine.net.arch} weights"
                )
                typer.echo(f"note: {weights}: loaded as {what} (recognised by its sha256)"
                           if engine.entry else f"note: {weights}: loaded as {what}", err=True)  # fmt: skip
            from sclle.enhancement.batch import enhance_files

            res = enhance_files(
                inputs, out, engine, recursive=recursive, format=format, quality=quality,
                overwrite=overwrite, compare=compare, suffix=suffix, parallel=parallel, progress=not quiet,
                max_pixels=max_pixels, shard=shard,
            )  # fmt: skip
            if not shard.main:  # rank 0 reports everyone's lines and exits 1 for all; exiting 1 here too
                return  # could let torchrun stop rank 0 before it has printed the summary
            for line in res.notes:
                typer.echo(f"note: {line}", err=True)
            for line in res.skipped:
                typer.echo(f"skipped: {line}", err=True)
            for line in res.failed:
                typer.echo(f"failed: {line}", err=True)
            typer.echo(
                f"done: {res.enhanced} enhanced, {len(res.skipped)} skipped, {len(res.failed)} failed "
                f"in {res.seconds:.1f} s -> {out}"
            )
            if res.failed:
                raise typer.Exit(1)

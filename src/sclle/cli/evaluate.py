"""``sclle evaluate``: a thin shell over :func:`sclle.evaluate.runner.evaluate`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer


def _split(values: list[str] | None) -> list[str]:
    """Repeatable options that also accept comma-separated lists: ``-m a,b -m c`` -> [a, b, c]."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        method: list[str] = typer.Option(
            ..., "--method", "-m", help="Method name or weights file; repeatable or comma-separated."
        ),
        data: list[str] = typer.Option(
            None,
            "--data",
            "-d",
            help="Image folder, NAME=folder, or a folder with low/ and high/ (paired, auto-detected). "
            "Repeatable.",
        ),
        synthetic: list[str] = typer.Option(
            None,
            "--synthetic",
            help="Folder of normal-light images to darken (--gamma/--exposure/--noise-peak/--seed) and score "
            "against the originals. Repeatable; NAME=folder allowed.",
        ),
        gamma: float = typer.Option(2.5, "--gamma", help="Synthetic darkening: x -> exposure * x**gamma."),
        exposure: float = typer.Option(0.5, "--exposure", help="Synthetic darkening exposure factor."),
        noise_peak: float = typer.Option(
            0.0, "--noise-peak", help="Synthetic darkening: Poisson noise, photons at white (0 = no noise)."
        ),
        read_noise: float = typer.Option(
            0.0, "--read-noise", help="Synthetic darkening: Gaussian read noise std."
        ),
        seed: int = typer.Option(0, "--seed", help="Synthetic darkening seed."),
        metrics: str = typer.Option(
            None,
            "--metrics",
            help="Comma-separated metrics (default: niqe,piqe,entropy,brightness,psnr,ssim).",
        ),
        out: Path = typer.Option(
            ..., "--out", "-o", file_okay=False, help="Report folder (created if missing)."
        ),
        limit: int = typer.Option(
            None, "--limit", min=1, help="Only N images per dataset, evenly spaced over the sorted list."
        ),
        save_images: bool = typer.Option(False, "--save-images", help="Also write the enhanced images."),
        sample: int = typer.Option(6, "--sample", min=0, help="Images per dataset in the contact sheet."),
        recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
        no_cache: bool = typer.Option(
            False, "--no-cache", help="Recompute everything (cache neither read nor written)."
        ),
        cache_dir: Path = typer.Option(None, "--cache-dir", help="Score cache folder (default: OUT/.cache)."),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda or mps."),
        threads: int = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Score methods on datasets; write paper-style tables, a contact sheet and histograms."""
        import torch

        from sclle.errors import SclleError
        from sclle.evaluate.datasets import SyntheticProtocol, parse_dataset
        from sclle.evaluate.report import fmt
        from sclle.evaluate.runner import evaluate

        if threads:
            torch.set_num_threads(threads)
        specs = [parse_dataset(d, recursive=recursive) for d in data or []]
        if synthetic:
            proto = SyntheticProtocol(gamma, exposure, noise_peak, read_noise, seed)
            specs += [
                parse_dataset(d, synthetic=True, protocol=proto, recursive=recursive) for d in synthetic
            ]
        if not specs:
            raise SclleError("give at least one dataset with --data or --synthetic")
        methods = _split(method)
        argv = sys.argv
        command = "sclle " + shlex.join(argv[1:]) if Path(argv[0]).name.startswith("sclle") else None
        res = evaluate(
            methods, specs, metrics=_split([metrics]) if metrics else None, out_dir=out, cache_dir=cache_dir,
            use_cache=not no_cache, save_images=save_images, limit=limit, sample_for_sheet=sample,
            device=device, progress=not quiet, command=command,
        )  # fmt: skip
        for ds in res.datasets:
            ms = res.metrics[ds.name]
            typer.echo(f"\n{ds.name} ({ds.kind})")
            typer.echo("  " + f"{'method':<20}" + "".join(f"{m.label:>14}" for m in ms))
            for method_name, row in res.table(ds.name).items():
                typer.echo("  " + f"{method_name:<20}" + "".join(f"{fmt(row[m.name]):>14}" for m in ms))
        s = res.stats
        typer.echo(
            f"\nscores: {s.computed} computed, {s.cached} cached; enhancements: {s.enhanced} run, "
            f"{s.enhance_skipped} from cache"
        )
        typer.echo(f"report: {out / 'index.md'}")
        if res.failures:
            typer.echo(f"{len(res.failures)} image(s)/run(s) skipped (see warnings above)", err=True)
            raise typer.Exit(1)

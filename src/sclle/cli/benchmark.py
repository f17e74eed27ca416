"""``sclle benchmark``: the whole scorecard in one command (a thin shell over :mod:`sclle.evaluate.suite`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("benchmark")
    def benchmark_cmd(
        methods: str = typer.Option(
            None, "--methods", "-m", help="Comma-separated methods (default: baselines, ours, all peers)."
        ),
        data_root: Path = typer.Option(
            None,
            "--data-root",
            help="Folder with DICM/, LIME/, sice_part1/, camvid/ (default: $SCLLE_SHARED/data).",
        ),
        out: Path = typer.Option(Path("reports/scorecard"), "--out", "-o", help="Report folder."),
        quick: bool = typer.Option(False, "--quick", help="3 images per protocol, small speed image (CI)."),
        limit: int = typer.Option(None, "--limit", min=1, help="Images per protocol (CamVid default 100)."),
        miou: bool = typer.Option(False, "--miou", help="Also mIoU at gamma 6/10 (slow)."),
        lpips: bool = typer.Option(
            False, "--lpips", help="Also LPIPS on the paired protocols (slow on CPU)."
        ),
        no_speed: bool = typer.Option(False, "--no-speed", help="Skip the seconds-per-image column."),
        sheet: str = typer.Option(
            None,
            "--sheet",
            help="Comma-separated methods of the contact sheet (default: input, the released SCL-LLE and "
            "Zero-DCE, sclle-default, and the methods given that are not built in).",
        ),
        protocols: str = typer.Option(
            None,
            "--protocols",
            help="Comma-separated protocols to score (default: all): DICM, LIME, SICE, CamVid-moderate, "
            "CamVid-strong, CamVid-normal. The scorecard then has only those columns (use another -o to keep "
            "a full one).",
        ),
        against: str = typer.Option(
            None,
            "--against",
            help="Comma-separated methods (among those scored) to compare every other one with: per column, "
            "the difference and its 95% paired bootstrap interval over the images (which leads are noise).",
        ),
        device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda, cuda:N or mps."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Score every method on every protocol: scorecard.md/.csv/.json, a plot and a contact sheet."""
        from sclle.evaluate.suite import DEFAULT_METHODS, margins_markdown, markdown, run_suite

        names = [m.strip() for m in methods.split(",") if m.strip()] if methods else list(DEFAULT_METHODS)
        sheet_names = ["input", *(m.strip() for m in sheet.split(",") if m.strip())] if sheet else None
        argv = sys.argv
        command = "sclle " + shlex.join(argv[1:]) if Path(argv[0]).name.startswith("sclle") else None
        card = run_suite(
            names, data_root=data_root, out_dir=out, quick=quick, limit=limit, miou=miou, lpips=lpips, speed=not no_speed,
            sheet_methods=sheet_names, device=device, progress=not quiet, command=command,
            protocols=[p.strip() for p in protocols.split(",") if p.strip()] if protocols else None,
            against=[a.strip() for a in against.split(",") if a.strip()] if against else None,
        )  # fmt: skip
        typer.echo(markdown(card))
        if card.margins:
            typer.echo(margins_markdown(card))
        for note in card.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo("wrote " + ", ".join(str(p) for p in card.files))

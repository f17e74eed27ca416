"""``sclle export``: ONNX / TorchScript files with dynamic height and width."""

from __future__ import annotations

from pathlib import Path

import typer

from sclle.models.export import export_model
from sclle.models.registry import load_weights


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        output: Path = typer.Argument(..., help="File to write (.onnx or .pt)."),
        format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
        model: str = typer.Option(None, "--model", "-m", help="Registry name or weights file."),
        weights: Path = typer.Option(None, "--weights", "-w", help="Local file for the --model entry."),
        opset: int = typer.Option(18, "--opset", help="ONNX opset."),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """Export an enhancer (image in, enhanced image out) for other runtimes."""
        from sclle.errors import SclleError

        if output.is_dir():
            raise SclleError("is a folder; give the file to write", output)
        if output.exists() and not overwrite:
            raise SclleError("exists; use --overwrite to replace it", output)
        net, _ = load_weights(model, weights=weights)
        path = export_model(net, output, format=format, opset=opset)
        typer.echo(f"wrote {path} ({format}, input (B,3,H,W) float32 in [0,1], dynamic H and W)")

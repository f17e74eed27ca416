"""``sclle train-seg``, ``sclle segment-eval`` and ``sclle darkness-benchmark``: thin shells over
:mod:`sclle.train.segmentation` and :mod:`sclle.evaluate.darkness`."""

from __future__ import annotations

from pathlib import Path

import typer


def _parse_gammas(text: str) -> list[float]:
    try:
        return [float(g) for g in text.split(",") if g.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"gammas must be comma-separated numbers, got {text!r}") from exc


def register(app: typer.Typer) -> None:
    @app.command("train-seg")
    def train_seg(
        config: Path = typer.Option(None, "--config", help="YAML config (configs/segmentation.yaml)."),
        data_root: str = typer.Option(None, "--data-root", help="CamVid folder ({train,val,test}[annot]/)."),
        out: str = typer.Option(None, "--out", help="Run folder (checkpoints, logs, export)."),
        epochs: int = typer.Option(None, "--epochs"),
        batch_size: int = typer.Option(None, "--batch-size"),
        device: str = typer.Option(None, "--device", help="auto | cpu | cuda"),
        workers: int = typer.Option(None, "--workers", help="DataLoader workers for decoding images."),
        time_budget_min: float = typer.Option(None, "--time-budget-min", help="Stop and export within this."),
        max_steps: int = typer.Option(None, "--max-steps"),
        resume: bool = typer.Option(False, "--resume", help="Continue from <out>/last.pt."),
        init_from: str = typer.Option(
            None, "--init-from", help="Fine-tune: start from this segmenter (registry name or file)."
        ),
        class_weight_power: float = typer.Option(
            None, "--class-weight-power", help="CE class weights (median_freq / freq) ** p; 0 = off."
        ),
    ) -> None:
        """Train the CamVid DeepLabv3+ semantic prior and export fp16 safetensors + JSON."""
        from sclle.train.segmentation import SegTrainConfig, train_segmenter

        cfg = SegTrainConfig.from_yaml(
            config,
            data_root=data_root,
            out=out,
            epochs=epochs,
            batch_size=batch_size,
            device=device,
            workers=workers,
            time_budget_min=time_budget_min,
            max_steps=max_steps,
            resume=resume or None,
            init_from=init_from,
            class_weight_power=class_weight_power,
        )
        typer.echo(str(train_segmenter(cfg)))

    @app.command("segment-eval")
    def segment_eval(
        data_root: Path = typer.Option(..., "--data-root", help="CamVid folder."),
        split: str = typer.Option("test", "--split", help="train | val | test"),
        seg_weights: str = typer.Option(
            None, "--seg-weights", help="Segmenter name or file (default: bundled)."
        ),
        limit: int = typer.Option(None, "--limit", help="Only N images, evenly spaced over the split."),
        batch_size: int = typer.Option(4, "--batch-size"),
        device: str = typer.Option("auto", "--device"),
        input_scale: float = typer.Option(
            None, "--input-scale", help="Override the inference scale stored with the weights (1 = native)."
        ),
    ) -> None:
        """mIoU, pixel accuracy and per-class IoU of the segmenter on a CamVid split."""
        from rich.console import Console
        from rich.table import Table

        from sclle.core.device import resolve_device
        from sclle.data.camvid import CamVid
        from sclle.evaluate.segmentation import evaluate_segmentation
        from sclle.models.segmentation import load_segmenter

        dev = resolve_device(device)
        model = load_segmenter(seg_weights, device=dev, input_scale=input_scale)
        scores = evaluate_segmentation(
            model, CamVid(data_root, split), batch_size=batch_size, device=dev, limit=limit
        )
        table = Table(title=f"CamVid {split} ({scores.n_images} images, input scale {model.input_scale:g})")
        table.add_column("class")
        table.add_column("IoU %", justify="right")
        for name, v in scores.per_class_iou.items():
            table.add_row(name, f"{100 * v:.2f}")
        table.add_row("[b]mIoU[/b]", f"[b]{100 * scores.miou:.2f}[/b]")
        table.add_row("pixel acc.", f"{100 * scores.pixel_accuracy:.2f}")
        Console().print(table)

    @app.command("darkness-benchmark")
    def darkness_benchmark_cmd(
        methods: str = typer.Option(
            "none", "--methods", help="Comma-separated method names, e.g. none,he,scl-lle-official."
        ),
        data_root: Path = typer.Option(..., "--data-root", help="CamVid folder."),
        out: Path = typer.Option(Path("reports/darkness"), "--out", help="Folder for darkness.{csv,md,png}."),
        gammas: str = typer.Option("1,2,6,10", "--gammas", help="Darkening exponents (image = x^gamma)."),
        split: str = typer.Option("test", "--split"),
        seg_weights: str = typer.Option(
            None, "--seg-weights", help="Segmenter name or file (default: bundled)."
        ),
        limit: int = typer.Option(None, "--limit", help="Only N images, evenly spaced over the split."),
        batch_size: int = typer.Option(4, "--batch-size"),
        device: str = typer.Option("auto", "--device"),
        against: str = typer.Option(
            None,
            "--against",
            help="Comma-separated methods (among --methods) to compare the others with: mIoU difference and "
            "its 95% paired bootstrap interval over the images.",
        ),
    ) -> None:
        """mIoU of the segmenter on darkened then enhanced CamVid images (the paper's Table 4 protocol)."""
        from sclle.evaluate.darkness import darkness_benchmark

        names = [m.strip() for m in methods.split(",") if m.strip()]
        refs = [a.strip() for a in against.split(",") if a.strip()] if against else []
        if refs:  # before the segmenter and every method load
            from sclle.enhancement.methods import method_label
            from sclle.errors import SclleError

            stray = [a for a in refs if a not in {*names, *(method_label(n) for n in names)}]
            if stray:
                raise SclleError(f"--against {', '.join(stray)}: not among --methods ({', '.join(names)})")
        darkness_benchmark(
            names,
            data_root,
            gammas=_parse_gammas(gammas),
            split=split,
            segmenter=seg_weights,
            limit=limit,
            out_dir=out,
            batch_size=batch_size,
            device=device,
            against=refs,
        )
        typer.echo((out / "darkness.md").read_text())
        extra = f", {out / 'darkness_margins.csv'}" if refs else ""
        typer.echo(f"wrote {out / 'darkness.csv'}, {out / 'darkness.md'}, {out / 'darkness.png'}{extra}")

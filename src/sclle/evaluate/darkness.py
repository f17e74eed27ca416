"""Segmentation under darkness: does enhancement restore what a normal-light segmenter sees?

The SCL-LLE paper (Table 4) darkens street scenes with ``x ** gamma`` (gamma in {1, 2, 6, 10}), enhances
them with each method and reports the mIoU of a fixed segmenter. :func:`darkness_benchmark` does the same
on CamVid's test split with the project's segmenter and any enhancement method of
:func:`sclle.enhancement.methods.get_method` (or a callable), and writes a CSV, a Markdown table (methods x
gamma) and a plot of mIoU vs gamma.

The dataset mIoU loop is :mod:`sclle.evaluate.segmentation`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from sclle.core.device import resolve_device
from sclle.core.files import atomic_write
from sclle.data.camvid import CLASS_NAMES, CamVid
from sclle.data.darken import gamma_darken
from sclle.enhancement.methods import ImageFn
from sclle.errors import SclleError
from sclle.evaluate.margins import miou_margin
from sclle.evaluate.plots import figure_png, pyplot
from sclle.evaluate.segmentation import evenly_spaced_loader, seg_scores
from sclle.metrics.segmentation import SegConfusion, confusion_matrix

# ----------------------------------------------------------------------------------------------------
# Darkness benchmark
# ----------------------------------------------------------------------------------------------------


def _resolve_method(method: str | ImageFn, device: torch.device) -> tuple[str, ImageFn]:
    if callable(method):
        return getattr(method, "name", getattr(method, "__name__", "custom")), method
    from sclle.enhancement.methods import get_method

    resolved = get_method(method, device=str(device))
    return resolved.name, resolved


def _markdown(rows: list[dict], names: list[str], gammas: Sequence[float]) -> str:
    table = {(r["method"], r["gamma"]): r["miou"] for r in rows}
    head = "| method | " + " | ".join(f"γ={g:g}" for g in gammas) + " |"
    sep = "|---|" + "---:|" * len(gammas)
    lines = ["mIoU (%) of the segmenter on darkened (x^γ), then enhanced, CamVid images", "", head, sep]
    for name in names:
        cells = [f"{100 * table[(name, float(g))]:.2f}" for g in gammas]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _margins_markdown(
    rows: list[dict], names: list[str], gammas: Sequence[float], against: Sequence[str]
) -> str:
    marks = {"better": "✓", "worse": "✗", "within noise": "~", "n/a": ""}
    by = {(r["method"], r["gamma"]): r for r in rows}
    lines = []
    for ref in against:
        lines += [
            f"mIoU difference from **{ref}** (points; 95 % paired bootstrap interval over the images; "
            "✓ / ✗ beyond the sample's noise, ~ within it)",
            "",
            "| method | " + " | ".join(f"γ={g:g}" for g in gammas) + " |",
            "|---|" + "---:|" * len(gammas),
        ]
        for name in names:
            if name == ref:
                continue
            cells = []
            for g in gammas:
                m = by[(name, float(g))]["margins"][ref]
                span = f" [{100 * m.lo:+.2f}, {100 * m.hi:+.2f}]" if math.isfinite(m.lo) else ""
                cells.append(f"{100 * m.delta:+.2f}{span} {marks[m.verdict]}".strip())
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _plot(rows: list[dict], names: list[str], gammas: Sequence[float], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name in names:
        ys = [
            100 * next(r["miou"] for r in rows if r["method"] == name and r["gamma"] == float(g))
            for g in gammas
        ]
        ax.plot(list(gammas), ys, marker="o", label=name)
    ax.set_xlabel("darkening γ (image = x^γ)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Segmentation under darkness (CamVid)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, figure_png(fig))


@torch.no_grad()
def darkness_benchmark(
    methods: Sequence[str | ImageFn],
    data_root: str | Path,
    *,
    gammas: Sequence[float] = (1, 2, 6, 10),
    split: str = "test",
    segmenter: nn.Module | str | Path | None = None,
    limit: int | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    workers: int = 0,
    progress: bool = True,
    dataset: Dataset | None = None,
    against: Sequence[str] = (),
) -> list[dict]:
    """mIoU of ``segmenter`` on CamVid ``split`` darkened by ``x ** gamma`` and enhanced by each method.

    Args:
        methods: method names for :func:`sclle.enhancement.methods.get_method` ("none" = no enhancement) or
            callables (B,3,H,W) -> (B,3,H,W).
        segmenter: a model, a registry name / file for :func:`load_segmenter`, or None for the bundled one.
        dataset: use this (image, label) dataset instead of ``CamVid(data_root, split)``.
        out_dir: when given, writes ``darkness.csv``, ``darkness.md`` and ``darkness.png`` there.
        against: method names among ``methods``: every other method's mIoU difference from each of them, per
            gamma, with a 95 % paired bootstrap interval over the images (:func:`sclle.evaluate.margins.miou_margin`),
            in each row's ``"margins"`` ({reference: Margin}) and, with ``out_dir``, in darkness.md and
            ``darkness_margins.csv``.
    Returns:
        One row per (method, gamma): ``{"method", "gamma", "miou", "pixel_accuracy", "n_images"}``
        plus ``"iou_<class>"`` per class (and ``"margins"`` with ``against``).
    """

    from sclle.models.segmentation import SemanticPrior, load_segmenter

    dev = resolve_device(device)
    if segmenter is None or isinstance(segmenter, (str, Path)):
        segmenter = load_segmenter(segmenter, device=dev)
    model = SemanticPrior(segmenter.to(dev)).eval()
    cl = dev.type == "cpu"  # channels-last: 1.6x faster CPU forward (BENCHMARKS.md)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    data = dataset if dataset is not None else CamVid(data_root, split)
    resolved = [_resolve_method(m, dev) for m in methods]
    names = [n for n, _ in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate method names: {names}")
    spec_to_name = {m: n for m, n in zip(methods, names, strict=True) if isinstance(m, str)}
    against = [spec_to_name.get(a, a) for a in ([against] if isinstance(against, str) else against)]
    against = list(dict.fromkeys(against))  # a method's spec or its label, as the table shows it
    stray = [a for a in against if a not in names]
    if stray:
        raise SclleError(
            f"--against {', '.join(stray)}: not among the methods benchmarked ({', '.join(names)})"
        )
    gammas = [float(g) for g in gammas]
    num_classes = getattr(segmenter, "num_classes", len(CLASS_NAMES))
    class_names = (
        list(CLASS_NAMES) if num_classes == len(CLASS_NAMES) else [str(i) for i in range(num_classes)]
    )
    confs = {(n, g): SegConfusion(num_classes, device=dev) for n in names for g in gammas}
    per_image: dict[tuple[str, float], list] = {k: [] for k in confs} if against else {}  # (C, C) per image
    loader = evenly_spaced_loader(data, limit, batch_size, workers)
    n_images = 0
    bar = tqdm(total=len(loader) * len(gammas) * len(names), desc="darkness", disable=not progress)
    for x, y in loader:
        x, y = x.to(dev), y.to(dev)
        n_images += x.shape[0]
        for g in gammas:
            dark = gamma_darken(x, g)
            for name, fn in resolved:
                enhanced = fn(dark).clamp(0, 1).to(dev)
                if cl:
                    enhanced = enhanced.contiguous(memory_format=torch.channels_last)
                pred = model(enhanced).argmax(1)
                conf = confs[(name, g)]
                conf.update(pred, y)
                if against:  # one matrix per image, for the bootstrap over images
                    per_image[(name, g)] += [
                        confusion_matrix(p, t, num_classes, conf.ignore_index).cpu().numpy()
                        for p, t in zip(pred, y, strict=True)
                    ]
                bar.update(1)
    bar.close()
    rows = []
    for name in names:
        for g in gammas:
            s = seg_scores(confs[(name, g)], class_names, n_images)
            row = {
                "method": name,
                "gamma": g,
                "miou": s.miou,
                "pixel_accuracy": s.pixel_accuracy,
                "n_images": n_images,
            }
            row.update({f"iou_{c}": v for c, v in s.per_class_iou.items()})
            if against:
                row["margins"] = {
                    ref: miou_margin(np.stack(per_image[(name, g)]), np.stack(per_image[(ref, g)]))
                    for ref in against
                    if ref != name
                }
            rows.append(row)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[k for k in rows[0] if k != "margins"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(out / "darkness.csv", buf.getvalue().encode())
        md = _markdown(rows, names, gammas)
        if against:
            md += "\n" + _margins_markdown(rows, names, gammas, against)
            mbuf = io.StringIO()
            mw = csv.writer(mbuf)
            mw.writerow(["method", "reference", "gamma", "delta_miou", "lo", "hi", "n_images", "verdict"])
            for r in rows:
                for ref, m in r["margins"].items():
                    mw.writerow([r["method"], ref, r["gamma"], m.delta, m.lo, m.hi, m.n, m.verdict])
            atomic_write(out / "darkness_margins.csv", mbuf.getvalue().encode())
        atomic_write(out / "darkness.md", md.encode())
        _plot(rows, names, gammas, out / "darkness.png")
    return rows

"""Render :class:`~sclle.evaluate.results.Results` as paper-style tables, a contact sheet and histograms.

Layout of a report folder::

    index.md                      links everything, with the tables inline
    average.csv / average.md      mean over datasets of the per-dataset means
    results.json                  the same numbers for scripts
    <dataset>/metrics.csv|.md     rows = methods, columns = metrics (with ↑/↓), like Tables 1 and 2
    <dataset>/per_image.csv       every score (dataset, image, method, metric, value)
    <dataset>/contact_sheet.png   rows = sample images, columns = methods (+ reference)
    <dataset>/histograms.png      luminance histogram per method, like the paper's Fig. 5
    images/<dataset>/<method>/    enhanced images (only with save_images)

Every file is written atomically (:func:`sclle.core.files.atomic_write`). This module only renders: it
reads :mod:`sclle.evaluate.results` and never imports the runner.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from sclle.core.files import atomic_write
from sclle.errors import ImageWriteError
from sclle.evaluate.plots import figure_png, pyplot
from sclle.evaluate.results import REFERENCE_COLUMN, MetricSpec, Results, results_to_json, safe_name

#: The identity and reference rows are yardsticks, not contenders: never marked best.
_NOT_RANKED = {"input", "none", REFERENCE_COLUMN}


# --------------------------------------------------------------------------------------------- writing


def _atomic_write(path: Path, data: bytes) -> Path:
    """Write one report file; a write error is an :class:`ImageWriteError` naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, data)
    except OSError as exc:
        raise ImageWriteError(f"cannot write report file ({exc.strerror or exc})", path) from exc


def _write_text(path: Path, text: str) -> Path:
    return _atomic_write(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------- tables


def fmt(value: float) -> str:
    """Paper-style number: 2 decimals for |v| >= 10, 3 for >= 1, else 4."""
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    a = abs(value)
    return f"{value:.2f}" if a >= 10 else f"{value:.3f}" if a >= 1 else f"{value:.4f}"


def _best(table: dict[str, dict[str, float]], metric: MetricSpec) -> set[str]:
    if metric.lower_is_better is None:
        return set()
    vals = {
        m: row[metric.name]
        for m, row in table.items()
        if m not in _NOT_RANKED and not math.isnan(row.get(metric.name, math.nan))
    }
    if len(vals) < 2:
        return set()
    target = min(vals.values()) if metric.lower_is_better else max(vals.values())
    return {m for m, v in vals.items() if v == target}


def markdown_table(
    table: dict[str, dict[str, float]],
    metrics: list[MetricSpec],
    counts: dict[str, int] | None = None,
    count_label: str = "images",
) -> str:
    """Rows = methods, columns = metrics with ↑/↓; the best non-identity value per column in bold."""
    best = {m.name: _best(table, m) for m in metrics}
    head = ["Method", *(m.label for m in metrics)] + ([count_label] if counts is not None else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---", *["---:"] * (len(head) - 1)]) + "|"]
    for method, row in table.items():
        cells = [f"`{method}`"]
        for m in metrics:
            s = fmt(row.get(m.name, math.nan))
            cells.append(f"**{s}**" if method in best[m.name] else s)
        if counts is not None:
            cells.append(str(counts.get(method, 0)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(
    table: dict[str, dict[str, float]], metrics: list[MetricSpec], counts: dict[str, int] | None
) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(m.name for m in metrics)] + (["n_images"] if counts is not None else []))
    for method, row in table.items():
        vals = [repr(float(row.get(m.name, math.nan))) for m in metrics]
        w.writerow([method, *vals] + ([counts.get(method, 0)] if counts is not None else []))
    return buf.getvalue()


def _per_image_csv(results: Results, dataset: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    metrics = results.metrics[dataset]
    w.writerow(["image", "method", *(m.name for m in metrics)])
    per_method = results.scores.get(dataset, {})
    images = sorted({k for s in per_method.values() for k in s})
    for image in images:
        for method in results.rows(dataset):
            s = per_method.get(method, {}).get(image)
            if s is not None:
                w.writerow([image, method, *(repr(float(s.get(m.name, math.nan))) for m in metrics)])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- pictures


@lru_cache(maxsize=4)
def _font(size: int):
    """DejaVu Sans (shipped with matplotlib) so labels look the same everywhere; PIL's default otherwise."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except Exception:  # noqa: BLE001 - any font problem falls back to PIL's built-in font
        return ImageFont.load_default()


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(
    rows: list[tuple[str, dict[str, bytes]]], columns: list[str], title: str = ""
) -> bytes | None:
    """PNG of the sample: one row per image, one labelled column per method (tiles <= 256 px)."""
    from PIL import Image, ImageDraw

    rows = [(k, t) for k, t in rows if t]
    if not rows:
        return None
    columns = [c for c in columns if any(c in t for _, t in rows)]
    tiles = [{c: Image.open(io.BytesIO(t[c])).convert("RGB") for c in t} for _, t in rows]
    f_head, f_label, f_title = _font(15), _font(12), _font(17)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad = 6
    label_w = int(min(160, max(measure.textlength(k, font=f_label) for k, _ in rows) + 3 * pad))
    header_h, title_h = 26, (30 if title else 0)
    col_w = max(im.width for t in tiles for im in t.values())
    row_h = [max(im.height for im in t.values()) for t in tiles]
    width = label_w + len(columns) * (col_w + pad) + pad
    height = title_h + header_h + sum(h + pad for h in row_h) + pad
    sheet = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text(
            (pad + 2, 6), _fit_text(draw, title, f_title, width - 2 * pad), fill=(20, 20, 20), font=f_title
        )
    for j, c in enumerate(columns):
        x0 = label_w + pad + j * (col_w + pad)
        text = _fit_text(draw, c, f_head, col_w - 4)
        tw = draw.textlength(text, font=f_head)
        color = (90, 90, 90) if c in _NOT_RANKED else (20, 20, 20)
        draw.text((x0 + (col_w - tw) / 2, title_h + 4), text, fill=color, font=f_head)
    y = title_h + header_h
    for (key, _), t, h in zip(rows, tiles, row_h, strict=True):
        words = _fit_text(draw, key, f_label, label_w - 2 * pad)
        draw.text((pad, y + h / 2 - 7), words, fill=(40, 40, 40), font=f_label)
        for j, c in enumerate(columns):
            x0 = label_w + pad + j * (col_w + pad)
            im = t.get(c)
            if im is None:
                draw.rectangle([x0, y, x0 + col_w - 1, y + h - 1], outline=(200, 200, 200))
                continue
            sheet.paste(im, (x0 + (col_w - im.width) // 2, y + (h - im.height) // 2))
        y += h + pad
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def histogram_plot(
    hists: dict[str, np.ndarray], columns: list[str], title: str = "", bins: int = 32
) -> bytes | None:
    """PNG of the mean luminance histogram of each method's outputs (one curve per method).

    The 256 levels are pooled into ``bins`` so that methods producing comb-like histograms
    (histogram equalisation) stay readable. The y axis is logarithmic: the input of a low-light
    dataset piles up near black and would flatten every other curve on a linear axis.
    """
    plt = pyplot()
    cols = [c for c in columns if c in hists]
    if not cols:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    step = 256 // bins
    centers = (np.arange(bins) + 0.5) * step - 0.5
    cmap = plt.get_cmap("tab10")
    k = 0
    curves = []
    for c in cols:
        h = np.asarray(hists[c], dtype=np.float64)[: bins * step].reshape(bins, step).sum(axis=1)
        h = np.maximum(h, 1e-7)
        if c == REFERENCE_COLUMN:
            style = {"color": "black", "linestyle": ":", "linewidth": 2.0}
        elif c in _NOT_RANKED:
            style = {"color": "0.45", "linestyle": "--", "linewidth": 1.6}
        else:
            style = {"color": cmap(k % 10), "linewidth": 1.8}
            k += 1
        ax.plot(centers, h, label=c, **style)
        curves.append(h)
    ax.set_yscale("log")
    values = np.concatenate(curves)
    # Frame the bulk of the curves: the lowest 2% (empty bins of comb-like histograms) may fall off.
    ax.set_ylim(max(1e-4, float(np.percentile(values, 2)) / 2), min(1.0, float(values.max()) * 1.5))
    ax.set_xlim(0, 255)
    ax.set_xlabel("luminance (0–255)")
    ax.set_ylabel(f"fraction of pixels per {step}-level bin")
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


# ---------------------------------------------------------------------------------------------- report


def write_report(results: Results, out_dir: str | Path, command: str | None = None) -> list[Path]:
    """Write every report file of ``results`` into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    files: list[Path] = []
    index: list[str] = ["# Evaluation report", ""]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    index.append(f"Generated {stamp} by `sclle evaluate`.")
    if command:
        index += ["", "```", command, "```"]
    index += ["", "Methods: " + ", ".join(f"`{m}`" for m in results.methods) + ".", ""]

    avg, avg_metrics, n_ds = results.average_table()
    if len(results.datasets) > 1:
        files.append(_write_text(out / "average.csv", csv_table(avg, avg_metrics, None)))
        md = markdown_table(avg, avg_metrics)
        note = ", ".join(f"{m.name}: {n_ds[m.name]}" for m in avg_metrics)
        text = f"# Mean over datasets\n\nEach dataset weighs the same; datasets per metric: {note}.\n\n{md}"
        files.append(_write_text(out / "average.md", text))
        index += [
            "## Mean over datasets",
            "",
            f"Mean of the per-dataset means ([CSV](average.csv)); datasets per metric: {note}.",
            "",
            md,
        ]

    for ds in results.datasets:
        name = ds.name
        sub = out / safe_name(name)
        rel = safe_name(name)
        metrics = results.metrics[name]
        table = results.table(name)
        counts = {m: results.count(name, m) for m in results.rows(name)}
        files.append(_write_text(sub / "metrics.csv", csv_table(table, metrics, counts)))
        md = markdown_table(table, metrics, counts)
        files.append(_write_text(sub / "metrics.md", f"# {name}\n\n{ds.describe()}\n\n{md}"))
        files.append(_write_text(sub / "per_image.csv", _per_image_csv(results, name)))
        columns = [*results.methods] + ([REFERENCE_COLUMN] if ds.has_reference else [])
        links = [f"[table CSV]({rel}/metrics.csv)", f"[per-image scores]({rel}/per_image.csv)"]
        pictures: list[str] = []
        png = contact_sheet(results.sheets.get(name, []), columns, title=f"{name}: methods side by side")
        if png is not None:
            files.append(_atomic_write(sub / "contact_sheet.png", png))
            links.append(f"[contact sheet]({rel}/contact_sheet.png)")
            pictures.append(f"![{name} contact sheet]({rel}/contact_sheet.png)")
        png = histogram_plot(results.hists.get(name, {}), columns, title=f"{name}: luminance histograms")
        if png is not None:
            files.append(_atomic_write(sub / "histograms.png", png))
            links.append(f"[luminance histograms]({rel}/histograms.png)")
            pictures.append(f"![{name} luminance histograms]({rel}/histograms.png)")
        if (out / "images" / rel).is_dir():
            links.append(f"[enhanced images](images/{rel}/)")
        n_items = max(counts.values(), default=0)
        index += [f"## {name}", "", f"{ds.describe()}; {n_items} images.", "", md, " · ".join(links), ""]
        index += [p + "\n" for p in pictures]

    if results.failures:
        index += ["## Skipped", "", f"{len(results.failures)} image(s) or runs were skipped:", ""]
        index += [f"- {f}" for f in results.failures] + [""]
    s = results.stats
    index += [
        "## Run",
        "",
        f"Metric values computed: {s.computed}, from cache: {s.cached}; enhancements run: {s.enhanced}, "
        f"served from cache: {s.enhance_skipped}.",
        "",
        "| method | fingerprint |",
        "|:---|:---|",
        *(f"| `{m}` | `{fp}` |" for m, fp in results.method_info.items()),
        "",
        "[All numbers as JSON](results.json)",
        "",
    ]
    files.append(_write_text(out / "results.json", results_to_json(results)))
    files.append(_write_text(out / "index.md", "\n".join(index)))
    return files

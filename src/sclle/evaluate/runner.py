"""Run methods x datasets x images, score every output, cache the scores, write the report.

Each input image is enhanced once per method, in memory, and every applicable metric is computed on
that output (no-reference metrics on every dataset, full-reference ones where a reference exists).
Scores are cached in ``<out_dir>/.cache/results.sqlite`` keyed by

    (method fingerprint, image content hash, metric, dataset protocol)

so a re-run after adding a method, a metric or a few images only computes what is new; when every
score of an (image, method) is cached the enhancement is skipped too. The luminance histogram and
(for the contact-sheet sample) a thumbnail of each output are cached the same way, so a fully cached
re-run rebuilds the whole report without running any method.

A bad image (unreadable, mismatched pair, a method or metric raising on it) costs one warning line
and is skipped; :attr:`Results.failures` lists them and the CLI exits non-zero.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sqlite3
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sclle.errors import SclleError
from sclle.evaluate.datasets import DatasetItem, DatasetSpec, parse_dataset

log = logging.getLogger(__name__)

DEFAULT_NR_METRICS = ("niqe", "piqe", "entropy", "brightness")
DEFAULT_FR_METRICS = ("psnr", "ssim")
REFERENCE_COLUMN = "reference"
THUMB_SIZE = 256
HIST_BINS = 256
CACHE_VERSION = 1

#: MATLAB ``rgb2gray`` weights; the brightness metric and the histograms use the same luminance.
_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, H, W) luminance in [0, 1] (``rgb2gray`` weights)."""
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1)


def brightness(x: torch.Tensor) -> torch.Tensor:
    """Mean luminance of each image, (B,) in [0, 1]: the "mean brightness" column of the paper's Table 1.

    Neither higher nor lower is better: it shows how far a method lifts the exposure, which
    puts NIQE/PIQE in context (an over-brightened image can still score well on them).
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"brightness expects (B, 3, H, W), got {tuple(x.shape)}")
    return luminance(x.to(torch.float64)).mean(dim=(-2, -1))


class Brightness(nn.Module):
    """Module twin of :func:`brightness` (used when the metrics registry has no ``brightness``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return brightness(x)


@dataclass(frozen=True)
class MetricSpec:
    """What the runner and the report need to know about a metric."""

    name: str
    kind: str  # "nr" | "fr"
    lower_is_better: bool | None

    @property
    def arrow(self) -> str:
        return "" if self.lower_is_better is None else ("↓" if self.lower_is_better else "↑")

    @property
    def label(self) -> str:
        return f"{self.name} {self.arrow}".strip()


@dataclass
class Failure:
    dataset: str
    image: str
    method: str | None
    reason: str

    def __str__(self) -> str:
        who = f" [{self.method}]" if self.method else ""
        return f"{self.dataset}/{self.image}{who}: {self.reason}"


@dataclass
class RunStats:
    """Counters a caller (or a test) can check: what was computed and what came from the cache."""

    computed: int = 0  # metric values computed in this run
    cached: int = 0  # metric values read from the cache
    enhanced: int = 0  # method calls (image enhancements)
    enhance_skipped: int = 0  # (image, method) pairs fully served from the cache


@dataclass
class Results:
    """Everything one evaluation produced; :mod:`sclle.evaluate.report` renders it."""

    methods: list[str]
    datasets: list[DatasetSpec]
    metrics: dict[str, list[MetricSpec]]  # per dataset name: the metrics that apply to it
    #: scores[dataset][method][image] = {metric: value}
    scores: dict[str, dict[str, dict[str, dict[str, float]]]]
    #: hists[dataset][column] = mean normalised luminance histogram over the dataset's images
    hists: dict[str, dict[str, np.ndarray]]
    #: sheets[dataset] = [(image key, {column: PNG bytes})] for the contact sheet
    sheets: dict[str, list[tuple[str, dict[str, bytes]]]]
    failures: list[Failure] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    method_info: dict[str, str] = field(default_factory=dict)  # method -> fingerprint

    def rows(self, dataset: str) -> list[str]:
        """Table rows of a dataset: the methods, then ``reference`` where the dataset has one."""
        extra = [REFERENCE_COLUMN] if REFERENCE_COLUMN in self.scores.get(dataset, {}) else []
        return [*self.methods, *extra]

    def table(self, dataset: str) -> dict[str, dict[str, float]]:
        """{row: {metric: mean over images}} for one dataset (NaN where nothing was scored).

        Rows are the methods plus, for paired/synthetic data, ``reference``: the no-reference
        scores of the targets themselves, which the methods' values are best read against.
        """
        out: dict[str, dict[str, float]] = {}
        for method in self.rows(dataset):
            per_image = self.scores.get(dataset, {}).get(method, {})
            out[method] = {
                m.name: _mean([s[m.name] for s in per_image.values() if m.name in s])
                for m in self.metrics[dataset]
            }
        return out

    def count(self, dataset: str, method: str) -> int:
        return len(self.scores.get(dataset, {}).get(method, {}))

    def average_table(self) -> tuple[dict[str, dict[str, float]], list[MetricSpec], dict[str, int]]:
        """Mean over datasets of the per-dataset means (each dataset weighs the same, as in the paper).

        Returns (table, metrics, {metric: number of datasets it was averaged over}).
        """
        metrics: dict[str, MetricSpec] = {}
        for ds in self.datasets:
            for m in self.metrics[ds.name]:
                metrics.setdefault(m.name, m)
        tables = {ds.name: self.table(ds.name) for ds in self.datasets}
        n_ds = {
            name: sum(any(m.name == name for m in self.metrics[ds.name]) for ds in self.datasets)
            for name in metrics
        }
        out = {
            method: {
                name: _mean([t[method][name] for t in tables.values() if name in t[method]])
                for name in metrics
            }
            for method in self.methods
        }
        return out, list(metrics.values()), n_ds

    @property
    def ok(self) -> bool:
        return not self.failures


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


# ----------------------------------------------------------------------------------------------- cache


class ResultCache:
    """Scores, histograms and thumbnails keyed by (method fingerprint, image hash, protocol).

    SQLite: one small file, safe against an interrupted run (each image is one transaction).
    ``path=None`` keeps everything in memory (nothing reused across runs).
    """

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path) if path is not None else ":memory:")
            self.db.executescript(
                """
                CREATE TABLE IF NOT EXISTS scores (
                    method TEXT, image TEXT, protocol TEXT, metric TEXT, value REAL,
                    PRIMARY KEY (method, image, protocol, metric));
                CREATE TABLE IF NOT EXISTS blobs (
                    kind TEXT, method TEXT, image TEXT, protocol TEXT, data BLOB,
                    PRIMARY KEY (kind, method, image, protocol));
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
                """
            )
            row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if row is not None and row[0] != str(CACHE_VERSION):
                self.db.executescript("DELETE FROM scores; DELETE FROM blobs;")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CACHE_VERSION),))
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            raise SclleError(f"result cache is unusable ({exc}); delete it to start afresh", path) from exc

    def scores(self, method: str, image: str, protocol: str) -> dict[str, float]:
        rows = self.db.execute(
            "SELECT metric, value FROM scores WHERE method=? AND image=? AND protocol=?",
            (method, image, protocol),
        )
        return {k: (math.nan if v is None else float(v)) for k, v in rows}

    def put_scores(self, method: str, image: str, protocol: str, values: dict[str, float]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
            [(method, image, protocol, k, v) for k, v in values.items()],
        )

    def blob(self, kind: str, method: str, image: str, protocol: str) -> bytes | None:
        row = self.db.execute(
            "SELECT data FROM blobs WHERE kind=? AND method=? AND image=? AND protocol=?",
            (kind, method, image, protocol),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def put_blob(self, kind: str, method: str, image: str, protocol: str, data: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?)", (kind, method, image, protocol, data)
        )

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()


# --------------------------------------------------------------------------------------------- metrics


def _metric_registry() -> dict[str, object]:
    from sclle.metrics import list_metrics

    return {info.name: info for info in list_metrics()}


def resolve_metrics(names: Sequence[str] | None) -> tuple[list[MetricSpec], dict[str, nn.Module]]:
    """Metric specs and modules for ``names`` (None = the paper's defaults that are available).

    ``brightness`` is built in when the registry lacks it. Unknown names raise a
    :class:`SclleError` listing the known ones; with the defaults, a metric missing from the
    registry is dropped with a warning instead (so a partial install still evaluates).
    """
    from sclle.metrics import create

    registry = _metric_registry()
    explicit = names is not None
    wanted = list(names) if names is not None else [*DEFAULT_NR_METRICS, *DEFAULT_FR_METRICS]
    specs: list[MetricSpec] = []
    modules: dict[str, nn.Module] = {}
    for name in dict.fromkeys(n.strip() for n in wanted if n.strip()):
        info = registry.get(name)
        if info is None and name == "brightness":
            specs.append(MetricSpec("brightness", "nr", None))
            modules[name] = Brightness()
            continue
        if info is None and not name.startswith("pyiqa:"):
            if explicit:
                known = ", ".join(sorted({*registry, "brightness"}))
                raise SclleError(f"unknown metric {name!r}; known: {known}")
            warnings.warn(f"metric {name!r} is not available; left out of the report", stacklevel=2)
            continue
        module = create(name)
        if info is None:  # pyiqa:... created on demand; read its description from the module
            info = module
        kind = getattr(info, "kind", "nr")
        if kind not in ("nr", "fr"):
            raise SclleError(
                f"metric {name!r} is a {kind!r} metric; sclle evaluate scores images (nr/fr) only"
            )
        specs.append(MetricSpec(name, kind, getattr(info, "lower_is_better", None)))
        modules[name] = module
    if not specs:
        raise SclleError("no metrics to compute")
    return specs, modules


# ---------------------------------------------------------------------------------------------- images


def _hist(x: torch.Tensor) -> np.ndarray:
    """Normalised 256-bin histogram of the 8-bit luminance of a (1, 3, H, W) image."""
    g = torch.round(luminance(x.to(torch.float32)).clamp(0, 1) * 255).to(torch.int64).flatten()
    h = torch.bincount(g.cpu(), minlength=HIST_BINS).to(torch.float64)
    return (h / h.sum()).numpy().astype(np.float32)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def _thumb_png(x: torch.Tensor, size: int = THUMB_SIZE) -> bytes:
    from PIL import Image

    im = Image.fromarray(_to_uint8(x))
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _sample_indices(n: int, k: int) -> set[int]:
    if k <= 0 or n == 0:
        return set()
    if k >= n:
        return set(range(n))
    return {round(i * (n - 1) / (k - 1)) for i in range(k)} if k > 1 else {0}


def _display_name(spec: str) -> str:
    p = Path(spec)
    return p.stem if spec.endswith((".pth", ".pt", ".safetensors", ".ckpt")) else spec


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name) or "_"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SclleError) else f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------------------- runner


def evaluate(
    methods: Sequence[str],
    datasets: Sequence[str | Path | DatasetSpec],
    *,
    metrics: Sequence[str] | None = None,
    out_dir: str | Path = "reports/eval",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    save_images: bool = False,
    limit: int | None = None,
    sample_for_sheet: int = 6,
    device: str = "cpu",
    progress: bool = True,
    write_report: bool = True,
    command: str | None = None,
) -> Results:
    """Evaluate ``methods`` on ``datasets`` and write the report into ``out_dir``.

    ``methods`` are names for :func:`sclle.enhancement.methods.get_method` (``input``, ``gamma``,
    ``scl-lle-official``, a checkpoint path ...); ``datasets`` are folders, ``name=folder``,
    ``synthetic:folder?gamma=..`` strings or :class:`DatasetSpec` objects. ``metrics`` defaults to
    NIQE, PIQE, entropy and mean brightness (no-reference) plus PSNR and SSIM (where a reference
    exists). ``limit`` keeps the first N images (sorted) of each dataset; ``sample_for_sheet``
    images per dataset appear in the contact sheet. Returns the :class:`Results` (the report's
    files in ``results.files``).
    """
    from sclle.enhancement.methods import get_method

    if not methods:
        raise SclleError("no methods given")
    if not datasets:
        raise SclleError("no datasets given")
    if limit is not None and limit < 1:
        raise SclleError(f"--limit must be >= 1, got {limit}")
    out = Path(out_dir)
    specs_ds = [parse_dataset(d) for d in datasets]
    seen: dict[str, int] = {}
    for i, ds in enumerate(specs_ds):  # unique dataset names (they name report folders)
        n = seen.get(ds.name, 0)
        seen[ds.name] = n + 1
        if n:
            specs_ds[i] = DatasetSpec(f"{ds.name}-{n + 1}", ds.root, ds.kind, ds.synthetic, ds.recursive)
    # Scan every dataset first: an empty folder or a bad pair layout fails before any work.
    items_by_ds = {ds.name: ds.items(limit) for ds in specs_ds}

    metric_specs, modules = resolve_metrics(metrics)
    for m in modules.values():
        m.to(device).eval()
    loaded_methods = []
    for spec in dict.fromkeys(methods):
        meth = get_method(spec, device=device)
        loaded_methods.append((_display_name(meth.name), meth))
    names = [n for n, _ in loaded_methods]
    if len(set(names)) != len(names):
        raise SclleError(f"two methods share a display name: {', '.join(names)}")

    ds_metrics = {ds.name: [m for m in metric_specs if m.kind == "nr" or ds.has_reference] for ds in specs_ds}
    for ds in specs_ds:
        if not ds_metrics[ds.name]:
            raise SclleError(
                f"none of the metrics ({', '.join(m.name for m in metric_specs)}) apply to {ds.name}: "
                "full-reference metrics need low/+high/ or synthetic pairs",
                ds.root,
            )

    cache = ResultCache(
        (Path(cache_dir) if cache_dir else out / ".cache") / "results.sqlite" if use_cache else None
    )
    results = Results(
        methods=names,
        datasets=specs_ds,
        metrics=ds_metrics,
        scores={},
        hists={},
        sheets={},
        out_dir=out,
        method_info={n: m.fingerprint or n for n, m in loaded_methods},
    )
    stats = results.stats

    def fail(ds: DatasetSpec, item: DatasetItem, method: str | None, exc: BaseException) -> None:
        f = Failure(ds.name, item.key, method, _one_line(exc))
        results.failures.append(f)
        tqdm.write(f"warning: skipped {f}")

    try:
        for ds in specs_ds:
            items = items_by_ds[ds.name]
            dms = ds_metrics[ds.name]
            sample = _sample_indices(len(items), sample_for_sheet)
            rows = names + ([REFERENCE_COLUMN] if ds.has_reference else [])
            scores = results.scores.setdefault(ds.name, {n: {} for n in rows})
            hist_sum: dict[str, np.ndarray] = {}
            hist_n: dict[str, int] = {}
            sheet: list[tuple[str, dict[str, bytes]]] = []
            protocol = ds.protocol
            bar = tqdm(
                total=len(items) * len(loaded_methods),
                desc=ds.name,
                unit="run",
                disable=not progress,
                leave=False,
            )
            for idx, item in enumerate(items):
                tiles: dict[str, bytes] = {}
                try:
                    key = ds.content_key(item)
                    pair = _ItemData(ds, item)
                    if ds.has_reference:  # the target: its histogram, thumbnail and no-reference scores
                        ref = _score_one(
                            cache, stats, _ReferenceView(pair), _identity, REFERENCE_COLUMN, key, protocol,
                            [m for m in dms if m.kind == "nr"], modules, device,
                            want_thumb=idx in sample, save_to=None, is_method=False,
                        )  # fmt: skip
                        scores[REFERENCE_COLUMN][item.key] = ref.scores
                        hist_sum[REFERENCE_COLUMN] = hist_sum.get(REFERENCE_COLUMN, 0) + ref.hist
                        hist_n[REFERENCE_COLUMN] = hist_n.get(REFERENCE_COLUMN, 0) + 1
                        if ref.thumb is not None:
                            tiles[REFERENCE_COLUMN] = ref.thumb
                except Exception as exc:  # noqa: BLE001 - any bad image is skipped, never fatal
                    fail(ds, item, None, exc)
                    bar.update(len(loaded_methods))
                    continue
                for name, meth in loaded_methods:
                    fp = results.method_info[name]
                    try:
                        values = _score_one(
                            cache, stats, pair, meth, fp, key, protocol, dms, modules, device,
                            want_thumb=idx in sample,
                            save_to=(out / "images" / safe_name(ds.name) / safe_name(name) / f"{safe_name(item.key)}.png")
                            if save_images else None,
                        )  # fmt: skip
                    except Exception as exc:  # noqa: BLE001
                        if pair.load_error is not None:  # the image itself is bad: one warning for all
                            fail(ds, item, None, pair.load_error)
                            bar.update(len(loaded_methods) - names.index(name))
                            break
                        fail(ds, item, name, exc)
                        bar.update(1)
                        continue
                    scores[name][item.key] = values.scores
                    hist_sum[name] = hist_sum.get(name, 0) + values.hist
                    hist_n[name] = hist_n.get(name, 0) + 1
                    if values.thumb is not None:
                        tiles[name] = values.thumb
                    bar.update(1)
                cache.commit()
                if idx in sample and tiles:
                    sheet.append((item.key, tiles))
            bar.close()
            results.hists[ds.name] = {c: hist_sum[c] / hist_n[c] for c in hist_sum}
            results.sheets[ds.name] = sheet
    finally:
        cache.close()
    if write_report:
        from sclle.evaluate.report import write_report as _write

        results.files = _write(results, out, command=command)
    return results


class _ItemData:
    """Lazily loaded (input, reference) of one dataset item, shared by all methods."""

    def __init__(self, ds: DatasetSpec, item: DatasetItem) -> None:
        self.ds, self.item = ds, item
        self._data: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.load_error: BaseException | None = None

    def get(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.load_error is not None:
            raise self.load_error
        if self._data is None:
            try:
                self._data = self.ds.load(self.item)
            except Exception as exc:
                self.load_error = exc
                raise
        return self._data


@dataclass
class _Scored:
    scores: dict[str, float]
    hist: np.ndarray
    thumb: bytes | None


class _ReferenceView:
    """The reference of an item seen as an input: its no-reference scores are the target values."""

    def __init__(self, pair: _ItemData) -> None:
        self.pair = pair

    def get(self) -> tuple[torch.Tensor, None]:
        _, ref = self.pair.get()
        assert ref is not None
        return ref, None


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _score_one(
    cache: ResultCache,
    stats: RunStats,
    pair: _ItemData | _ReferenceView,
    method: Callable[[torch.Tensor], torch.Tensor],
    fp: str,
    key: str,
    protocol: str,
    metrics: list[MetricSpec],
    modules: dict[str, nn.Module],
    device: str,
    *,
    want_thumb: bool,
    save_to: Path | None,
    is_method: bool = True,
) -> _Scored:
    """Scores of one (image, method): from the cache, else by enhancing once and scoring."""
    have = cache.scores(fp, key, protocol)
    missing = [m for m in metrics if m.name not in have]
    hist_b = cache.blob("hist", fp, key, protocol)
    thumb = cache.blob("thumb", fp, key, protocol) if want_thumb else None
    need_save = save_to is not None and not save_to.exists()
    stats.cached += len(metrics) - len(missing)
    if not missing and hist_b is not None and (thumb is not None or not want_thumb) and not need_save:
        stats.enhance_skipped += is_method
        return _Scored(
            {m.name: have[m.name] for m in metrics}, np.frombuffer(hist_b, dtype=np.float32), thumb
        )

    x, ref = pair.get()
    with torch.inference_mode():
        y = method(x.to(device))
        stats.enhanced += is_method
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"method returned {got}, expected {tuple(x.shape)}")
        y = y.to(torch.float32).clamp(0, 1)
        new: dict[str, float] = {}
        for m in missing:
            mod = modules[m.name]
            if m.kind == "fr":
                assert ref is not None
                v = mod(y, ref.to(device))
            else:
                v = mod(y)
            new[m.name] = float(torch.as_tensor(v).reshape(-1)[0])
            stats.computed += 1
    hist = _hist(y)
    if want_thumb and thumb is None:
        thumb = _thumb_png(y)
        cache.put_blob("thumb", fp, key, protocol, thumb)
    cache.put_blob("hist", fp, key, protocol, hist.tobytes())
    cache.put_scores(fp, key, protocol, new)
    if need_save:
        assert save_to is not None
        from sclle.imageio import from_array, from_tensor, write_image

        rgb = from_tensor(y)
        write_image(save_to, from_array(rgb), rgb, overwrite=True)
    have.update(new)
    return _Scored({m.name: have[m.name] for m in metrics}, hist, thumb)


def results_to_json(results: Results) -> str:
    """Machine-readable summary (per-dataset means, counts, failures) for scripts and CI."""
    avg, _, n_ds = results.average_table()
    data = {
        "methods": results.methods,
        "fingerprints": results.method_info,
        "datasets": {
            ds.name: {
                "kind": ds.kind,
                "root": str(ds.root),
                "protocol": ds.protocol,
                "metrics": [m.name for m in results.metrics[ds.name]],
                "n_images": {m: results.count(ds.name, m) for m in results.rows(ds.name)},
                "means": results.table(ds.name),
            }
            for ds in results.datasets
        },
        "average": {"means": avg, "n_datasets": n_ds},
        "failures": [str(f) for f in results.failures],
        "stats": vars(results.stats),
    }
    return json.dumps(data, indent=2, allow_nan=True, ensure_ascii=False)

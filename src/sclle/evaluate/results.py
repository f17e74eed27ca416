"""What one evaluation produced: per-image scores, the tables made from them, failures and counters.

The runner fills :class:`Results`; :mod:`sclle.evaluate.report` renders it. Both import this module and
neither imports the other's internals, so the tables can be read (or rendered) without running anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sclle.evaluate.datasets import DatasetSpec

#: Row of the target images' own no-reference scores (paired and synthetic datasets).
REFERENCE_COLUMN = "reference"


@dataclass(frozen=True)
class MetricSpec:
    """A report column: a metric's name, kind and direction (``None``: neither higher nor lower is better).

    Built from a :mod:`sclle.metrics` entry (:meth:`of`) so the report never needs the metric itself.
    """

    name: str
    kind: str  # "nr" | "fr"
    lower_is_better: bool | None

    @classmethod
    def of(cls, name: str, info: object) -> MetricSpec:
        """The column of metric ``name`` described by ``info`` (a registry entry or the metric module)."""
        return cls(name, getattr(info, "kind", "nr"), getattr(info, "lower_is_better", None))

    @property
    def arrow(self) -> str:
        return "" if self.lower_is_better is None else ("↓" if self.lower_is_better else "↑")

    @property
    def label(self) -> str:
        return f"{self.name} {self.arrow}".strip()


@dataclass
class Failure:
    """One skipped image or (image, method) run and why, as one warning line."""

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


def safe_name(name: str) -> str:
    """A dataset or method name as a file/folder name (report folders, saved images)."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name) or "_"


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

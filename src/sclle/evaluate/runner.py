"""Run methods x datasets x images, score every output, cache the scores, write the report.

Each input image is enhanced once per method, in memory, and every applicable metric is computed on
that output (no-reference metrics on every dataset, full-reference ones where a reference exists).
Scores are cached (:mod:`sclle.evaluate.cache`, ``<out_dir>/.cache/results.sqlite``) keyed by

    (method fingerprint, image content hash, metric, dataset protocol)

so a re-run after adding a method, a metric or a few images only computes what is new; when every
score of an (image, method) is cached the enhancement is skipped too. The luminance histogram and
(for the contact-sheet sample) a thumbnail of each output are cached the same way, so a fully cached
re-run rebuilds the whole report without running any method.

A bad image (unreadable, mismatched pair, a method or metric raising on it) costs one warning line
and is skipped; :attr:`Results.failures` lists them and the CLI exits non-zero.

This module is the loop only: the results it fills are :mod:`sclle.evaluate.results`, the metrics
:mod:`sclle.evaluate.scoring`, the rendering :mod:`sclle.evaluate.report`. Their public names are
re-exported here for callers that import them from the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sclle.errors import SclleError
from sclle.evaluate import report
from sclle.evaluate.cache import CACHE_VERSION, ResultCache, cache_file
from sclle.evaluate.datasets import DatasetItem, DatasetSpec, parse_dataset
from sclle.evaluate.results import (
    REFERENCE_COLUMN,
    Failure,
    MetricSpec,
    Results,
    RunStats,
    results_to_json,
    safe_name,
)
from sclle.evaluate.scoring import (
    DEFAULT_FR_METRICS,
    DEFAULT_NR_METRICS,
    HIST_BINS,
    THUMB_SIZE,
    Brightness,
    brightness,
    luminance,
    luminance_histogram,
    resolve_metrics,
    thumbnail_png,
)

__all__ = [
    "evaluate",
    "CACHE_VERSION",
    "DEFAULT_FR_METRICS",
    "DEFAULT_NR_METRICS",
    "HIST_BINS",
    "REFERENCE_COLUMN",
    "THUMB_SIZE",
    "Brightness",
    "Failure",
    "MetricSpec",
    "ResultCache",
    "Results",
    "RunStats",
    "brightness",
    "luminance",
    "resolve_metrics",
    "results_to_json",
    "safe_name",
]


def _sample_indices(n: int, k: int) -> set[int]:
    if k <= 0 or n == 0:
        return set()
    if k >= n:
        return set(range(n))
    return {round(i * (n - 1) / (k - 1)) for i in range(k)} if k > 1 else {0}


def _display_name(spec: str) -> str:
    p = Path(spec)
    return p.stem if spec.endswith((".pth", ".pt", ".safetensors", ".ckpt")) else spec


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SclleError) else f"{type(exc).__name__}: {text}"


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
    exists). ``limit`` keeps N images of each dataset, evenly spaced over its sorted list; ``sample_for_sheet``
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

    cache = ResultCache(cache_file(out, cache_dir) if use_cache else None)
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
        results.files = report.write_report(results, out, command=command)
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
    hist = luminance_histogram(y)
    if want_thumb and thumb is None:
        thumb = thumbnail_png(y)
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

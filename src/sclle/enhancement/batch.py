"""Enhance many files: decode and encode in worker threads while the network computes.

A bad file never stops the batch: it is recorded with a one-line reason and the rest go on.
Inputs are never written to; existing outputs are kept unless ``overwrite``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from sclle import io
from sclle.enhancement.engine import Engine
from sclle.errors import SclleError


@dataclass
class BatchResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outputs that existed (no --overwrite)
    failed: list[str] = field(default_factory=list)  # one line each: "<file>: <reason>"
    notes: list[str] = field(default_factory=list)  # what did not survive the output format, once each
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _read(path: Path) -> io.Image:
    return io.read_image(path)


def enhance_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    engine: Engine,
    *,
    recursive: bool = False,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
    compare: bool = False,
    suffix: str = "",
    workers: int = 2,
    progress: bool = True,
) -> BatchResult:
    """Enhance every image named by ``inputs`` (files, folders, globs) into ``out_dir``."""
    t0 = time.perf_counter()
    result = BatchResult()
    items, errors = io.find_images(inputs, recursive=recursive)
    result.failed.extend(errors)
    out_dir = Path(out_dir)
    out_resolved = out_dir.resolve()
    jobs: list[tuple[Path, Path]] = []
    planned: set[Path] = set()
    for src, base in items:
        if out_resolved in src.resolve().parents and out_resolved != base.resolve():
            continue  # an earlier run's outputs inside a recursively scanned input folder
        dst = io.output_path(src, out_dir, format=format, suffix=suffix, relative_to=base)
        if dst in planned:  # e.g. a/10.jpg and b/10.bmp both -> 10.png: keep both, named apart
            dst = dst.with_name(f"{dst.stem}-{src.parent.name}{dst.suffix}")
            note = "outputs whose names collided got their input folder's name appended"
            if note not in result.notes:
                result.notes.append(note)
        planned.add(dst)
        if dst.exists() and not overwrite:
            result.skipped.append(f"{dst}: exists (use --overwrite to replace it)")
            continue
        jobs.append((src, dst))

    def write(img: io.Image, rgb, dst: Path) -> list[Path]:
        with warnings.catch_warnings():  # notes are collected below and reported once, not per file
            warnings.simplefilter("ignore", io.ConversionWarning)
            written = [io.write_image(dst, img, rgb, format=format, quality=quality, overwrite=overwrite)]
        if compare:
            sheet = io.side_by_side(img.rgb, rgb)
            cmp_img = io.Image(
                rgb=sheet,
                alpha=None,
                mode="rgb",
                bit_depth=8,
                format="PNG",
                exif=None,
                icc_profile=None,
                path=None,
            )
            cmp_path = dst.with_name(dst.stem + "_compare.png")
            written.append(io.write_image(cmp_path, cmp_img, sheet, format="PNG", overwrite=overwrite))
        return written

    def prefetch(pool: ThreadPoolExecutor) -> Iterator[tuple[Path, Path, Future]]:
        # Keep a few decodes in flight ahead of the network.
        pending: list[tuple[Path, Path, Future]] = []
        for src, dst in jobs:
            pending.append((src, dst, pool.submit(_read, src)))
            if len(pending) > workers:
                yield pending.pop(0)
        yield from pending

    writes: list[tuple[Path, Future]] = []
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as readers,
        ThreadPoolExecutor(max_workers=max(1, workers)) as writers,
    ):
        bar = tqdm(total=len(jobs), desc="enhance", unit="img", disable=not progress)
        for src, dst, fut in prefetch(readers):
            try:
                img = fut.result()
                for note in io.conversion_notes(img, format or img.format or "PNG"):
                    if note not in result.notes:
                        result.notes.append(note)
                out = engine(io.to_tensor(img.rgb))
                rgb = io.from_tensor(out)
                writes.append((src, writers.submit(write, img, rgb, dst)))
            except SclleError as exc:
                result.failed.append(str(exc))
            except (RuntimeError, MemoryError) as exc:  # e.g. out of memory on a huge image
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                result.failed.append(f"{src}: {reason} (try --tile 512 or --fast)")
            bar.update(1)
        bar.close()
        for src, wf in writes:
            try:
                result.written.extend(wf.result())
            except SclleError as exc:
                result.failed.append(str(exc))
            except OSError as exc:
                result.failed.append(f"{src}: could not write output ({exc.strerror or exc})")
    result.seconds = time.perf_counter() - t0
    return result

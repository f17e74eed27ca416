"""Enhance many files: decode, compute and encode overlapped in threads, on one rank or many.

What a batch promises (the README's "What sclle promises" table says the same):

* a bad file never stops the batch: it is recorded with a one-line reason and the rest go on;
* inputs are never written to, and no output of this run may land on an input;
* every output lies inside ``out_dir`` (checked after resolving links);
* each input gets its own output name: names that would collide within the run (``x/a/10.jpg`` and
  ``y/a/10.jpg``, or ``x.png``'s comparison sheet and ``x_compare.png``) are told apart by appending the
  input folder's name (then a number), the same way on every rerun;
* existing outputs are kept unless ``overwrite``; without it a file is created exclusively, so two runs
  into one folder never replace each other's files; so a rerun resumes (finished outputs are skipped);
* under ``torchrun`` the batch is split over the ranks, each output written by exactly one of them
  (:mod:`sclle.enhancement.shard`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sclle import imageio
from sclle.core.files import inside
from sclle.enhancement.engine import Engine
from sclle.enhancement.shard import Shard, gather, process_group, share
from sclle.errors import SclleError
from sclle.imageio.discover import resolved
from sclle.imageio.formats import canonical_format

_COMPARE = "_compare"
_COLLIDED = "outputs whose names collided got their input folder's name appended"


@dataclass
class BatchResult:
    written: list[Path] = field(default_factory=list)  # every file written (results and comparison sheets)
    skipped: list[str] = field(default_factory=list)  # outputs that existed (no --overwrite)
    failed: list[str] = field(default_factory=list)  # one line each: "<file>: <reason>"
    notes: list[str] = field(default_factory=list)  # what did not survive the output format, once each
    enhanced: int = 0  # inputs whose enhanced result was written
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def check_suffix(suffix: str) -> str:
    """Refuse a file-name suffix that could change folders (separators, ``..``) or is not a plain name."""
    seps = {"/", "\\", os.sep, os.altsep or "/"}
    if any(c in suffix for c in seps) or ".." in suffix:
        raise ValueError(f"suffix {suffix!r} must not contain path separators or '..'")
    if any(ord(c) < 32 for c in suffix):
        raise ValueError(f"suffix {suffix!r} must not contain control characters")
    return suffix


def _key(p: Path) -> str:
    """Identity of a path for collision checks: resolved, and case-folded (macOS/Windows ignore case)."""
    return os.path.normcase(str(resolved(p))).casefold()


def _sheet(dst: Path) -> Path:
    return dst.with_name(dst.stem + _COMPARE + ".png")


def _fail_reason(src: Path, exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return f"{src}: {text}"


class _Planner:
    """Gives each input a distinct output name inside ``out_dir`` that is not an input file."""

    def __init__(self, out_dir: Path, inputs: set[str], compare: bool) -> None:
        self.out_dir = out_dir
        self.inputs = inputs
        self.compare = compare
        self.claimed: set[str] = set()
        self.renamed = False

    def _free(self, dst: Path) -> bool:
        names = [dst, _sheet(dst)] if self.compare else [dst]
        return all(_key(n) not in self.claimed and _key(n) not in self.inputs for n in names)

    def claim(self, src: Path, dst: Path) -> Path:
        """The first free name among ``dst``, ``dst-<folder>``, ``dst-<folder>-2`` ... (raises SclleError)."""
        if not inside(dst, self.out_dir):  # '..', or a subfolder of -o that links to elsewhere
            raise SclleError(f"output {dst} would lie outside the output folder {self.out_dir}", src)
        natural = dst
        if _key(dst) == _key(src):
            raise SclleError(
                f"its output {dst.name} would replace an input image; choose another output folder (-o) "
                "or add --suffix",
                src,
            )
        tag = src.parent.name or "input"
        n = 1
        while not self._free(dst):
            n += 1
            label = tag if n == 2 else f"{tag}-{n - 1}"
            dst = natural.with_name(f"{natural.stem}-{label}{natural.suffix}")
        self.renamed = self.renamed or dst != natural
        self.claimed.add(_key(dst))
        if self.compare:
            self.claimed.add(_key(_sheet(dst)))
        return dst


def _plan(
    inputs: Sequence[str | Path],
    out_dir: Path,
    *,
    recursive: bool,
    format: str | None,
    suffix: str,
    compare: bool,
    overwrite: bool,
) -> tuple[list[tuple[Path, Path]], BatchResult]:
    """Discover the inputs and name their outputs: ``[(input, output)]`` still to do, plus what was not."""
    result = BatchResult()
    items, errors = imageio.find_images(inputs, recursive=recursive)
    result.failed.extend(errors)
    out_resolved = resolved(out_dir)
    planned: list[tuple[Path, Path]] = []
    for src, base in items:
        src_res = resolved(src)
        if out_resolved in src_res.parents and out_resolved != resolved(base):
            continue  # an earlier run's outputs inside a recursively scanned input folder
        try:
            dst = imageio.output_path(src, out_dir, format=format, suffix=suffix, relative_to=base)
        except ValueError as exc:
            result.failed.append(f"{src}: {exc}")
            continue
        if (
            suffix
            and resolved(dst.parent) == src_res.parent
            and src.stem.endswith((suffix, suffix + _COMPARE))
        ):
            result.skipped.append(f"{src}: looks like an earlier output (its name ends with the suffix)")
            continue  # -o is the input folder: never enhance our own outputs again on a rerun
        planned.append((src, dst))
    planner = _Planner(out_dir, {_key(src) for src, _ in planned}, compare)
    jobs: list[tuple[Path, Path]] = []
    for src, dst in planned:
        try:
            dst = planner.claim(src, dst)
        except SclleError as exc:
            result.failed.append(str(exc))
            continue
        if not overwrite and dst.exists():  # finished by an earlier (or killed) run: resume past it
            result.skipped.append(f"{dst}: exists (use --overwrite to replace it)")
            continue
        jobs.append((src, dst))
    if planner.renamed:
        result.notes.append(_COLLIDED)
    return jobs, result


def _merge(parts: Sequence[BatchResult]) -> BatchResult:
    """One result from the ranks' results, in rank order (rank 0's holds the planning lines)."""
    out = BatchResult()
    for r in parts:
        out.written.extend(r.written)
        out.skipped.extend(r.skipped)
        out.failed.extend(r.failed)
        out.notes.extend(n for n in r.notes if n not in out.notes)
        out.enhanced += r.enhanced
        out.seconds = max(out.seconds, r.seconds)
    return out


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
    parallel: int | None = None,
    progress: bool = True,
    max_pixels: int | None = imageio.DEFAULT_MAX_PIXELS,
    shard: Shard | None = None,
) -> BatchResult:
    """Enhance every image named by ``inputs`` (files, folders, globs) into ``out_dir``.

    Decoding runs ``workers`` images ahead of the network and encoding up to ``workers + 1`` behind it,
    each in its own thread pool, so the cores stay busy while memory stays bounded by a few images. On a
    CPU, a batch of small images is instead enhanced ``parallel`` at a time, one thread each (default
    None: :func:`parallel_images` decides; 1 forces one at a time). That sets torch's thread count for
    the duration of the batch (process-wide) and puts it back.
    With a ``shard`` of several ranks (see :mod:`sclle.enhancement.shard`) rank 0 plans, each rank
    enhances its share, and every rank returns the merged result of all of them.

    Raises ``ValueError`` for invalid arguments (suffix, format, quality, workers); everything about a single
    file (unreadable, too large, not writable...) becomes a line in the result instead.
    """
    check_suffix(suffix)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if format is not None and canonical_format(format) is None:
        raise ValueError(f"unknown output format {format!r}")
    if int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if parallel is not None and int(parallel) < 1:
        raise ValueError(f"parallel must be at least 1 (or None: automatic), got {parallel}")
    shard = shard or Shard()
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    with process_group(shard):
        planned = None
        if shard.main:
            planned = _plan(
                inputs, out_dir, recursive=recursive, format=format, suffix=suffix, compare=compare,
                overwrite=overwrite,
            )  # fmt: skip
        jobs, result = share(shard, planned)
        if not shard.main:
            result = BatchResult()  # the planning lines are rank 0's to report
        _run(
            shard.select(jobs, key=lambda job: str(job[0])), engine, result, format=format, quality=quality,
            overwrite=overwrite, compare=compare, workers=int(workers), parallel=parallel,
            progress=progress and shard.main,
            max_pixels=max_pixels,
        )  # fmt: skip
        result.seconds = time.perf_counter() - t0
        return _merge(gather(shard, result))


#: Images up to this size (the size their headers declare) may be enhanced several at once on a CPU.
PARALLEL_MAX_PIXELS = 4_000_000


class _Failed(Exception):
    """One input's line for ``BatchResult.failed``, raised from whichever stage failed."""


def parallel_images(jobs: Sequence[tuple[Path, Path]], engine: Engine, threads: int | None = None) -> int:
    """How many images of ``jobs`` to enhance at once: one per CPU thread when every image is small.

    Why: on small images the network's ops are too short for several threads to share one well
    (DICM/LIME in fast mode, 2 cores: 20.5 img/s with both threads on one image, 23.2 with one image
    per thread; BENCHMARKS.md, "Issue 15, third pass"),
    while decoding and encoding are single-threaded; an image per core keeps every core on its own
    image from file to file. Large images keep all threads on one image at a time, so memory stays
    that of one image (``PARALLEL_MAX_PIXELS`` bounds what several in flight can hold). GPUs, and
    callables other than an :class:`Engine` (not known to be thread-safe): 1.
    """
    threads = torch.get_num_threads() if threads is None else int(threads)
    if not isinstance(engine, Engine) or engine.device.type != "cpu" or threads < 2 or len(jobs) < 2:
        return 1
    for src, _ in jobs:
        size = imageio.declared_size(src)
        if size is not None and size[0] * size[1] > PARALLEL_MAX_PIXELS:
            return 1
    return min(threads, len(jobs))


def _run(
    jobs: Sequence[tuple[Path, Path]],
    engine: Engine,
    result: BatchResult,
    *,
    format: str | None,
    quality: int,
    overwrite: bool,
    compare: bool,
    workers: int,
    parallel: int | None,
    progress: bool,
    max_pixels: int | None,
) -> None:
    """Enhance ``jobs`` into ``result``, lines in job order, in one of two schedules.

    * one image at a time on all threads: decoding runs ``workers`` images ahead and encoding behind it,
      each in a thread pool, while the network computes here;
    * ``parallel`` images at a time, each in its own thread from file to file with one torch thread
      (:func:`parallel_images` says when).
    """

    def load(src: Path) -> tuple[imageio.Image, torch.Tensor]:
        img = imageio.read_image(src, max_pixels=max_pixels)
        return img, imageio.to_tensor(img.rgb)

    def compute(src: Path, x: torch.Tensor) -> torch.Tensor:
        try:
            return engine(x)
        except SclleError:
            raise
        except (RuntimeError, MemoryError) as exc:  # e.g. out of memory on a huge image
            raise _Failed(f"{_fail_reason(src, exc)} (try --tile 512 or --fast)") from None

    def write(img: imageio.Image, out: torch.Tensor, dst: Path) -> tuple[list[Path], list[str], list[str]]:
        """Write one result: (files written, skip lines, what the output format could not keep)."""
        notes = imageio.conversion_notes(img, format or img.format or "PNG")
        written: list[Path] = []
        skipped: list[str] = []
        with warnings.catch_warnings():  # notes are collected below and reported once, not per file
            warnings.simplefilter("ignore", imageio.ConversionWarning)
            try:
                written.append(
                    imageio.write_image(dst, img, out, format=format, quality=quality, overwrite=overwrite)
                )
            except imageio.OutputExistsError as exc:  # another run created it since we planned
                return written, [str(exc)], notes
            if compare:
                sheet = imageio.side_by_side(img.rgb, imageio.from_tensor(out))
                cmp_img = imageio.Image(rgb=sheet, mode="rgb", bit_depth=8, format="PNG")
                try:
                    written.append(
                        imageio.write_image(_sheet(dst), cmp_img, sheet, format="PNG", overwrite=overwrite)
                    )
                except imageio.OutputExistsError as exc:
                    skipped.append(str(exc))
        return written, skipped, notes

    def settle(src: Path, fut: Future) -> None:
        try:
            written, skipped, notes = fut.result()
        except (SclleError, _Failed) as exc:
            result.failed.append(str(exc))
        except OSError as exc:
            result.failed.append(f"{src}: could not write output ({exc.strerror or exc})")
        except Exception as exc:  # e.g. a result with NaN from broken weights
            result.failed.append(_fail_reason(src, exc))
        else:
            for note in notes:
                if note not in result.notes:
                    result.notes.append(note)
            result.written.extend(written)
            result.skipped.extend(skipped)
            result.enhanced += 1 if written else 0

    bar = tqdm(total=len(jobs), desc="enhance", unit="img", disable=not progress)
    n = parallel_images(jobs, engine) if parallel is None else max(1, int(parallel))
    if n > 1:

        def whole(src: Path, dst: Path) -> tuple[list[Path], list[str], list[str]]:
            img, x = load(src)
            return write(img, compute(src, x), dst)

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // n))  # process-wide; put back below
        try:
            with ThreadPoolExecutor(max_workers=n) as pool:
                running: deque[tuple[Path, Future]] = deque()
                for src, dst in jobs:
                    running.append((src, pool.submit(whole, src, dst)))
                    while len(running) > n:  # n images in memory at most, settled in job order
                        settle(*running.popleft())
                        bar.update(1)
                while running:
                    settle(*running.popleft())
                    bar.update(1)
        finally:
            torch.set_num_threads(threads)
        bar.close()
        return

    def prefetch(pool: ThreadPoolExecutor) -> Iterator[tuple[Path, Path, Future]]:
        # At most ``workers`` decodes in flight ahead of the network.
        pending: deque[tuple[Path, Path, Future]] = deque()
        for src, dst in jobs:
            pending.append((src, dst, pool.submit(load, src)))
            if len(pending) > workers:
                yield pending.popleft()
        yield from pending

    writes: deque[tuple[Path, Future]] = deque()
    with (
        ThreadPoolExecutor(max_workers=workers) as readers,
        ThreadPoolExecutor(max_workers=workers) as writers,
    ):
        for src, dst, fut in prefetch(readers):
            try:
                img, x = fut.result()
                writes.append((src, writers.submit(write, img, compute(src, x), dst)))
            except (SclleError, _Failed) as exc:
                result.failed.append(str(exc))
            except Exception as exc:  # a batch reports and goes on; never a traceback for one file
                result.failed.append(_fail_reason(src, exc))
            while len(writes) > workers:  # bounded: wait for the oldest (a count, not a timing: same
                settle(*writes.popleft())  # order of lines on every run)
            bar.update(1)
        while writes:
            settle(*writes.popleft())
    bar.close()

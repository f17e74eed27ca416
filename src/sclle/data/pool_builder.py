"""Offline builder of the contrastive pool (``sclle prepare-contrast``): exposure stacks in, pool folder out.

A scene shot at several exposures gives its darkest frame (under negative), its brightest frame (over
negative) and a positive, which is the sequence's reference image where one exists, else the Mertens
exposure fusion of the (aligned) frames.

Sources understood by :func:`build_pool`:

* **SICE layout** (``Dataset_Part1``): one folder per scene holding its exposure frames; the scene's
  reference is ``<root>/Label/<scene>.<ext>`` (the SICE release), or a file inside the scene folder
  whose stem is ``label``, ``reference``, ``ref`` or ``gt``, or the only image in ``<scene>/Label/``.
* **Flat folder + CSV**: frames in one folder and a CSV ``file,sequence_id[,mean_gray_0_255]`` that
  groups them into scenes (``sequences_heuristic.csv`` in ``shared/data/sice_part1``). No references.

Every scene is checked before it is used: frames are sorted by mean brightness (file numbers are not
reliable), singletons and too-short sequences are skipped, and neighbouring frames in exposure order
must align (see :func:`alignment`) because fusing frames of two slightly different views ghosts. Scenes
holding a frame of the held-out SICE list (:func:`sclle.data.sice.held_out_files`) are skipped: the
benchmark's real pairs are made of them.

Pool layout written by :func:`build_pool` (all PNG, short side ``size``)::

    pool/positives/<scene>.png
    pool/negatives/under/<scene>.png
    pool/negatives/over/<scene>.png
    pool/pool.json          provenance, parameters, per-scene stats, dropped scenes and reasons
    pool/contact_sheet.png  a few scenes: under | positive | over, to look at

The training-time reader of that layout is :class:`sclle.data.contrast.ContrastPool`. The check of one
scene (:func:`check_scene`) is shared with the SICE pairs (:mod:`sclle.evaluate.sice_pairs`).
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from sclle import imageio
from sclle.core.files import natural_sorted, write_json
from sclle.data.sice import held_out_files
from sclle.errors import SclleError

POOL_FORMAT = "sclle-contrast-pool/1"
#: The pool's index file, written last: a folder without it is no (complete) pool.
POOL_FILE = "pool.json"
POSITIVES_DIR = "positives"
#: Folder of each kind of negative; the kinds' order is their index in :attr:`ContrastPool.kinds`.
NEGATIVES_DIR = {"under": "negatives/under", "over": "negatives/over"}
_REF_STEMS = ("label", "reference", "ref", "gt")


# ------------------------------------------------------------------------------------------ scenes


@dataclass
class Scene:
    """One multi-exposure sequence: its frames (any order) and an optional reference image."""

    id: str
    frames: list[Path]
    reference: Path | None = None
    #: Mean gray (0..255) per frame if the source lists it; computed from the pixels otherwise.
    mean_gray: list[float] | None = None


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and imageio.is_supported(p)
    )


def scenes_from_csv(
    csv_path: str | Path, image_dir: str | Path | None = None
) -> tuple[list[Scene], list[dict]]:
    """Scenes from a flat folder and a ``file,sequence_id[,mean_gray_0_255]`` CSV.

    Returns the scenes and a list of skipped entries (``{"id", "frames", "reason"}``): singletons and
    files the CSV names but the folder lacks.
    """
    csv_path = Path(csv_path)
    folder = Path(image_dir) if image_dir is not None else csv_path.parent
    if not csv_path.is_file():
        raise SclleError("sequence CSV not found", csv_path)
    groups: dict[str, list[tuple[Path, float | None]]] = defaultdict(list)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "sequence_id"} <= set(reader.fieldnames):
            raise SclleError("CSV must have the columns file,sequence_id[,mean_gray_0_255]", csv_path)
        for row in reader:
            mg = row.get("mean_gray_0_255")
            groups[row["sequence_id"]].append(
                (folder / row["file"], float(mg) if mg not in (None, "") else None)
            )
    scenes, skipped = [], []
    for sid in natural_sorted(groups):
        items = groups[sid]
        missing = [p.name for p, _ in items if not p.is_file()]
        if missing:
            skipped.append(
                {"id": sid, "frames": [p.name for p, _ in items], "reason": f"missing files {missing[:5]}"}
            )
            continue
        if len(items) < 2:
            skipped.append({"id": sid, "frames": [p.name for p, _ in items], "reason": "singleton"})
            continue
        grays = [g for _, g in items]
        scenes.append(
            Scene(id=sid, frames=[p for p, _ in items], mean_gray=None if None in grays else grays)  # type: ignore[arg-type]
        )
    return scenes, skipped


def scenes_from_sice(root: str | Path) -> tuple[list[Scene], list[dict]]:
    """Scenes from the SICE layout: ``<root>/<scene>/*`` frames, reference in ``<root>/Label/<scene>.*``."""
    root = Path(root)
    label_dir = next((root / n for n in ("Label", "label", "Labels") if (root / n).is_dir()), None)
    labels = {p.stem: p for p in _images(label_dir)} if label_dir is not None else {}
    scenes, skipped = [], []
    dirs = [d for d in root.iterdir() if d.is_dir() and d != label_dir and not d.name.startswith(".")]
    for d in natural_sorted(dirs, key=lambda p: p.name):
        files = _images(d)
        ref = labels.get(d.name)
        frames = []
        for p in files:
            if p.stem.lower() in _REF_STEMS and ref is None:
                ref = p
            elif p.stem.lower() not in _REF_STEMS:
                frames.append(p)
        sub = next((d / n for n in ("Label", "label") if (d / n).is_dir()), None)
        if ref is None and sub is not None and len(_images(sub)) == 1:
            ref = _images(sub)[0]
        if len(frames) < 2:
            skipped.append(
                {"id": d.name, "frames": [p.name for p in frames], "reason": "fewer than 2 frames"}
            )
            continue
        scenes.append(Scene(id=d.name, frames=frames, reference=ref))
    return scenes, skipped


def discover_scenes(source: str | Path, csv_path: str | Path | None = None) -> tuple[list[Scene], list[dict]]:
    """Scenes in ``source``: the CSV layout if a CSV is given or ``sequences*.csv`` lies in ``source``,
    else the SICE folder-per-scene layout."""
    source = Path(source)
    if not source.is_dir():
        raise SclleError("source folder not found", source)
    if csv_path is None:
        found = sorted(source.glob("sequences*.csv"))
        csv_path = found[0] if found else None
    if csv_path is not None:
        return scenes_from_csv(csv_path, source)
    scenes, skipped = scenes_from_sice(source)
    if not scenes:
        raise SclleError(
            "no multi-exposure scenes found (expected one folder per scene, or frames + a "
            "file,sequence_id CSV)",
            source,
        )
    return scenes, skipped


# ------------------------------------------------------------------------------------------ checks


def _read_u8(path: Path) -> np.ndarray:
    """RGB uint8 HxWx3 (via sclle.imageio, the one place that decodes files)."""
    rgb = imageio.read_image(path).rgb
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _structure(img: np.ndarray, side: int) -> np.ndarray:
    """Brightness-free structure of a frame: standardised gradient magnitude of its blurred, downscaled gray.

    Standardising removes the exposure's gain/offset; gradients ignore smooth shading, so two exposures of
    the same view correlate highly and two slightly shifted views do not.
    """
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)
    gray = cv2.GaussianBlur(gray, (0, 0), 1.5)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    m = np.sqrt(gx * gx + gy * gy)
    return (m - m.mean()) / (m.std() + 1e-6)


def alignment(
    frames: Sequence[np.ndarray], side: int = 256, corr_side: int = 128
) -> tuple[list[float], list[float]]:
    """Correlation and shift (in % of the image side) between neighbouring frames.

    ``frames`` must already be in exposure order. The shift is OpenCV's phase correlation of the
    ``side`` px structure maps (:func:`_structure`), precise to a fraction of a pixel; the correlation
    is taken without any shift on coarser ``corr_side`` maps (less sensitive to the noise of dark
    frames), so a different view lowers it.
    """
    maps = [_structure(f, side) for f in frames]
    coarse = [_structure(f, corr_side) for f in frames]
    window = cv2.createHanningWindow((side, side), cv2.CV_32F)
    corr, shift = [], []
    for i in range(len(frames) - 1):
        corr.append(float((coarse[i] * coarse[i + 1]).mean()))
        (dx, dy), _ = cv2.phaseCorrelate(maps[i], maps[i + 1], window)
        shift.append(100.0 * math.hypot(dx, dy) / side)
    return corr, shift


def mertens_fusion(frames: Sequence[np.ndarray], exposure_weight: float = 1.0) -> np.ndarray:
    """Mertens exposure fusion of RGB uint8 frames -> RGB uint8.

    OpenCV's default exposure weight is 0 (only contrast and saturation); the paper's weight of 1 for
    well-exposedness gives the better exposed positive we want.
    """
    merge = cv2.createMergeMertens(1.0, 1.0, float(exposure_weight))
    fused = merge.process([cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames])
    fused = np.clip(fused * 255.0, 0, 255).round().astype(np.uint8)
    return cv2.cvtColor(fused, cv2.COLOR_BGR2RGB)


def _resize_short(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if min(h, w) <= size:
        return img
    s = size / min(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _write_png(path: Path, img_u8: np.ndarray) -> None:
    rgb = img_u8.astype(np.float32) / 255.0
    imageio.write_image(path, imageio.from_array(img_u8), rgb, format="PNG", overwrite=True)


# ------------------------------------------------------------------------------------------ building


@dataclass
class PoolParams:
    """Parameters of :func:`build_pool` (all written to pool.json)."""

    #: Short side of the written images (px).
    size: int = 256
    #: Scenes with fewer aligned frames are dropped.
    min_frames: int = 3
    #: Side of the structure maps used by the alignment check.
    align_side: int = 256
    #: Side of the (coarser) maps whose correlation is checked.
    corr_side: int = 128
    #: Neighbouring frames must correlate at least this much ...
    min_corr: float = 0.3
    #: ... and be shifted by at most this many % of the image side (0.75 % = ~4 px at 512).
    max_shift_pct: float = 0.75
    #: The darkest frame is an under negative only if its mean (0..1) is at most this.
    under_max_mean: float = 0.35
    #: The brightest frame is an over negative only if its mean (0..1) is at least this.
    over_min_mean: float = 0.6
    #: A fused positive whose mean (0..1) falls outside this range is not used.
    positive_mean_range: tuple[float, float] = (0.25, 0.75)
    #: Mertens well-exposedness weight.
    exposure_weight: float = 1.0


def check_scene(scene: Scene, params: PoolParams) -> tuple[dict, list[np.ndarray], np.ndarray | None]:
    """Sort a scene's frames by exposure, check they align and build its positive.

    Returns (record, frames in exposure order as RGB uint8, positive); a record with "reason" means
    the scene is not usable (then the positive is None). Shared by the pool and the SICE pairs.
    """
    imgs = [_read_u8(p) for p in scene.frames]
    shapes = {im.shape for im in imgs}
    rec: dict[str, Any] = {"id": scene.id, "frames": [p.name for p in scene.frames]}
    if len(shapes) != 1:
        rec["reason"] = f"frames differ in size {sorted(shapes)}"
        return rec, imgs, None
    grays = scene.mean_gray or [float(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).mean()) for im in imgs]
    order = sorted(range(len(imgs)), key=lambda i: grays[i])
    imgs = [imgs[i] for i in order]
    means = [float(im.mean()) / 255.0 for im in imgs]
    rec["frames"] = [scene.frames[i].name for i in order]
    rec["frame_means"] = [round(m, 4) for m in means]
    if len(imgs) < params.min_frames and scene.reference is None:
        rec["reason"] = f"only {len(imgs)} frames (min {params.min_frames})"
        return rec, imgs, None
    corr, shift = alignment(imgs, params.align_side, params.corr_side)
    rec["neighbour_corr"] = [round(c, 3) for c in corr]
    rec["neighbour_shift_pct"] = [round(s, 3) for s in shift]
    bad = [
        i
        for i, (c, s) in enumerate(zip(corr, shift, strict=True))
        if c < params.min_corr or s > params.max_shift_pct
    ]
    if bad:
        i = bad[0]
        rec["reason"] = (
            f"frames do not align: {rec['frames'][i]} -> {rec['frames'][i + 1]} corr {corr[i]:.2f} "
            f"(min {params.min_corr}), shift {shift[i]:.2f}% (max {params.max_shift_pct}%)"
        )
        return rec, imgs, None
    if scene.reference is not None:
        pos = _read_u8(scene.reference)
        rec["positive_source"] = f"reference {scene.reference.name}"
    else:
        pos = mertens_fusion(imgs, params.exposure_weight)
        rec["positive_source"] = f"mertens fusion of {len(imgs)} frames"
    pos_mean = float(pos.mean()) / 255.0
    rec["positive_mean"] = round(pos_mean, 4)
    lo, hi = params.positive_mean_range
    if scene.reference is None and not lo <= pos_mean <= hi:
        rec["reason"] = f"fused positive badly exposed (mean {pos_mean:.2f}, allowed {lo}..{hi})"
        return rec, imgs, None
    return rec, imgs, pos


def _process_scene(scene: Scene, params: PoolParams) -> tuple[dict, dict[str, np.ndarray]]:
    """Check one scene; return (record, images to write). A record with "reason" means dropped."""
    rec, imgs, pos = check_scene(scene, params)
    if pos is None:
        return rec, {}
    means = [float(im.mean()) / 255.0 for im in imgs]
    out: dict[str, np.ndarray] = {"positive": pos}
    if means[0] <= params.under_max_mean:
        out["under"] = imgs[0]
        rec["under"] = {"frame": rec["frames"][0], "mean": round(means[0], 4)}
    if means[-1] >= params.over_min_mean:
        out["over"] = imgs[-1]
        rec["over"] = {"frame": rec["frames"][-1], "mean": round(means[-1], 4)}
    return rec, {k: _resize_short(v, params.size) for k, v in out.items()}


def contact_sheet(pool_dir: str | Path, n: int = 8, tile: int = 160, seed: int = 0) -> Path:
    """Write ``contact_sheet.png``: ``n`` random scenes as rows of under | positive | over."""
    pool_dir = Path(pool_dir)
    meta = json.loads((pool_dir / POOL_FILE).read_text())
    ids = [s["id"] for s in meta["scenes"]]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False).tolist())
    rows = []
    for i in pick:
        sid = ids[i]
        row = []
        for sub in (NEGATIVES_DIR["under"], POSITIVES_DIR, NEGATIVES_DIR["over"]):
            p = pool_dir / sub / f"{sid}.png"
            if p.is_file():
                im = cv2.resize(imageio.read_image(p).rgb, (tile, tile), interpolation=cv2.INTER_AREA)
            else:
                im = np.full((tile, tile, 3), 0.5, np.float32)
            row.append(im)
            row.append(np.ones((tile, 2, 3), np.float32))
        rows.append(np.concatenate(row[:-1], axis=1))
        rows.append(np.ones((2, rows[-1].shape[1], 3), np.float32))
    sheet = np.clip(np.concatenate(rows[:-1], axis=0), 0.0, 1.0)
    target = pool_dir / "contact_sheet.png"
    imageio.write_image(target, imageio.from_array(sheet), sheet, overwrite=True)
    return target


def build_pool(
    source: str | Path,
    out_dir: str | Path,
    *,
    csv_path: str | Path | None = None,
    params: PoolParams | None = None,
    progress: bool = True,
    sheet: bool = True,
    exclude_held_out: bool = True,
) -> dict:
    """Build the contrastive pool from multi-exposure sequences in ``source`` into ``out_dir``.

    ``exclude_held_out`` skips every scene holding a frame of the held-out SICE list
    (:func:`sclle.data.sice.held_out_files`), which the benchmark's real pairs are made of.

    Returns the pool.json content. Existing pool files in ``out_dir`` are replaced; pool.json is
    written last, so an interrupted build leaves no loadable (half) pool.
    """
    params = params or PoolParams()
    out = Path(out_dir)
    t0 = time.perf_counter()
    scenes, skipped = discover_scenes(source, csv_path)
    # SICE scenes held out for evaluation (sclle.data.sice) never become positives or negatives.
    held = held_out_files() if exclude_held_out else set()
    n_held = sum(_holds_any(sc, held) for sc in scenes)
    scenes = [sc for sc in scenes if not _holds_any(sc, held)]
    (out / POOL_FILE).unlink(missing_ok=True)
    for sub in (POSITIVES_DIR, *NEGATIVES_DIR.values()):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*.png"):
            old.unlink()
    kept, dropped = [], list(skipped)
    for scene in tqdm(scenes, desc="contrast pool", unit="scene", disable=not progress):
        try:
            rec, images = _process_scene(scene, params)
        except SclleError as exc:
            dropped.append({"id": scene.id, "frames": [p.name for p in scene.frames], "reason": str(exc)})
            continue
        if "reason" in rec:
            dropped.append(rec)
            continue
        for key, img in images.items():
            sub = POSITIVES_DIR if key == "positive" else NEGATIVES_DIR[key]
            _write_png(out / sub / f"{scene.id}.png", img)
        kept.append(rec)
    meta = {
        "format": POOL_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(Path(source).resolve()),
        "csv": str(Path(csv_path).resolve()) if csv_path else None,
        "params": asdict(params),
        "counts": {
            "scenes_found": len(scenes) + len(skipped) + n_held,
            "scenes_held_out": n_held,
            "scenes_kept": len(kept),
            "scenes_dropped": len(dropped),
            "positives": len(kept),
            "under": sum("under" in s for s in kept),
            "over": sum("over" in s for s in kept),
        },
        "seconds": round(time.perf_counter() - t0, 2),
        "scenes": kept,
        "dropped": dropped,
    }
    if not kept:
        raise SclleError(
            "no scene passed the checks; nothing to write (see the reasons with --verbose)", source
        )
    write_json(out / POOL_FILE, meta, indent=1)
    if sheet:
        contact_sheet(out)
    return meta


def _holds_any(scene: Scene, frames: set[str]) -> bool:
    """Whether ``scene`` has a frame named in ``frames`` (held-out scenes are matched by their frames:
    the frame files are what training must never read, whatever a scene is called)."""
    return any(p.name in frames for p in scene.frames)


def training_scenes(
    source: str | Path, limit: int, seed: int = 0, params: PoolParams | None = None
) -> Iterator[tuple[Scene, list[np.ndarray], np.ndarray]]:
    """Up to ``limit`` usable scenes of ``source`` outside the held-out list, in a seeded random order:
    (scene, its frames in exposure order as RGB uint8, their fusion). For fitting on training data only
    (``scripts/fit_exposure.py``, ``scripts/exposure_floor.py``)."""
    held = held_out_files()
    found, _ = discover_scenes(source)
    found = [s for s in found if not _holds_any(s, held)]
    random.Random(seed).shuffle(found)
    used = 0
    for scene in found:
        if used >= limit:
            return
        rec, frames, fused = check_scene(scene, params or PoolParams())
        if "reason" in rec or fused is None:
            continue
        used += 1
        yield scene, frames, fused

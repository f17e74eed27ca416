"""What an evaluation runs on: a folder of images, a low/high paired folder, or synthetic pairs.

Three kinds of dataset, each told apart by its layout or by a ``synthetic:`` prefix:

* **folder** - a folder of (low-light) images with no reference (DICM, LIME): only no-reference
  metrics apply.
* **paired** - a folder holding ``low/`` and ``high/`` sub-folders (LOL, SICE Part2 style); files
  are matched by stem (``low/1.png`` <-> ``high/1.jpg``), so both no-reference and full-reference
  metrics apply. Every file must have its partner: a silent partial match would bias the averages.
* **synthetic** - a folder of *normal-light* images, each darkened on the fly by a seeded protocol
  (:mod:`sclle.data.darken`): the method sees the darkened copy and is scored against the original.
  The darkening of image ``i`` (in sorted order) depends only on the protocol, the seed and ``i``,
  so the pairs are the same on every run and machine.

A dataset is named after its folder unless given as ``name=path``. Specs are strings such as::

    /data/DICM
    lol=/data/LOL/eval15
    synthetic:/data/camvid/test?gamma=2.5&exposure=0.5&seed=0
    camvid-dark=synthetic:/data/camvid/test?gamma=2.5&peak=200&read_std=0.01

Synthetic parameters: ``gamma``, ``exposure`` (input = ``clip(exposure * x ** gamma)``), ``peak``
(Poisson noise, photons at white; 0 = none), ``read_std`` (Gaussian read noise) and ``seed``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl

import torch

from sclle.core.files import hash_file, natural_sorted
from sclle.core.sampling import evenly_spaced
from sclle.errors import SclleError

Kind = Literal["folder", "paired", "synthetic"]

#: Default synthetic darkening: ``exposure * x ** gamma``, no noise, see :mod:`sclle.data.darken`.
DEFAULT_GAMMA = 2.5
DEFAULT_EXPOSURE = 0.5
DEFAULT_SEED = 0

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_LOW_NAMES = ("low",)
_HIGH_NAMES = ("high",)


@dataclass(frozen=True)
class SyntheticProtocol:
    """How synthetic low-light inputs are made from normal-light images (recorded in every report)."""

    gamma: float = DEFAULT_GAMMA
    exposure: float = DEFAULT_EXPOSURE
    #: Poisson shot noise: photons at white (0 = none); see :class:`~sclle.data.darken.NoiseModel`.
    peak: float = 0.0
    #: Gaussian read noise std in [0, 1] units (needs ``peak > 0``).
    read_std: float = 0.0
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not self.gamma > 0:
            raise SclleError(f"synthetic gamma must be > 0, got {self.gamma}")
        if not 0 < self.exposure <= 1:
            raise SclleError(f"synthetic exposure must be in (0, 1], got {self.exposure}")
        if not self.peak >= 0 or not self.read_std >= 0:
            raise SclleError(f"synthetic noise must be >= 0, got peak={self.peak}, read_std={self.read_std}")
        if self.read_std > 0 and self.peak == 0:
            raise SclleError("synthetic read noise needs shot noise too: give peak (photons at white) > 0")
        if self.seed < 0:
            raise SclleError(f"synthetic seed must be >= 0, got {self.seed}")

    def describe(self) -> str:
        """Stable one-line description; also the cache's protocol key."""
        noise = f",peak={self.peak:g},read_std={self.read_std:g}" if self.peak > 0 else ""
        return f"gamma={self.gamma:g},exposure={self.exposure:g}{noise},seed={self.seed}"

    def darken_protocol(self):
        """The equivalent :class:`sclle.data.darken.DarkenProtocol` (fixed gamma and exposure)."""
        from sclle.data.darken import DarkenProtocol, NoiseModel

        noise = NoiseModel(peak=self.peak, read_std=self.read_std) if self.peak > 0 else None
        return DarkenProtocol((self.gamma, self.gamma), (self.exposure, self.exposure), noise)


@dataclass(frozen=True)
class DatasetItem:
    """One image of a dataset: its input file and, for paired/synthetic data, its reference."""

    key: str  # file stem, unique within the dataset
    input_path: Path
    ref_path: Path | None = None
    index: int = 0  # position in the (naturally) sorted dataset; seeds the synthetic darkening


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset to evaluate on; build it with :func:`parse_dataset`."""

    name: str
    root: Path
    kind: Kind
    synthetic: SyntheticProtocol | None = None
    recursive: bool = False

    @property
    def has_reference(self) -> bool:
        """Whether full-reference metrics (PSNR, SSIM) apply."""
        return self.kind in ("paired", "synthetic")

    @property
    def protocol(self) -> str:
        """Cache key part: how inputs and references are derived from the files."""
        if self.kind == "synthetic":
            assert self.synthetic is not None
            return f"synthetic[{self.synthetic.describe()}]"
        return self.kind

    def describe(self) -> str:
        """One line for reports: kind, folder and (synthetic) the darkening protocol."""
        if self.kind == "folder":
            return f"folder `{self.root}` (no reference)"
        if self.kind == "paired":
            return f"paired `{self.root}` (low/ vs high/, matched by file stem)"
        assert self.synthetic is not None
        s = self.synthetic
        noise = ""
        if s.peak > 0:
            noise = f" + Poisson noise ({s.peak:g} photons at white)"
            noise += f" + Gaussian read noise (std {s.read_std:g})" if s.read_std > 0 else ""
        return (
            f"synthetic pairs from `{self.root}`: input = clip({s.exposure:g} * x^{s.gamma:g}){noise}, "
            f"seed {s.seed} (per image: seed, sorted index); reference = the original image"
        )

    def items(self, limit: int | None = None) -> list[DatasetItem]:
        """The dataset's images in natural sort order (2 before 10); ``limit`` of them, evenly spaced, if given.

        Evenly spaced, not the first N: CamVid's test split is two sequences (dusk, then day), and its
        first 20 images are all dusk.
        """
        items = _scan(self)
        if limit is not None and limit <= 0:
            return []
        return [items[i] for i in evenly_spaced(len(items), limit)]

    def load(self, item: DatasetItem) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(input, reference or None), each (1, 3, H, W) float32 in [0, 1].

        Raises :class:`~sclle.errors.ImageReadError` for an unreadable file and
        :class:`~sclle.errors.SclleError` when a pair's sizes differ.
        """
        from sclle.imageio import read_image, to_tensor

        if self.kind == "synthetic":
            ref = to_tensor(read_image(item.ref_path or item.input_path).rgb)
            return darken_synthetic(ref, self.synthetic or SyntheticProtocol(), item.index), ref
        x = to_tensor(read_image(item.input_path).rgb)
        if item.ref_path is None:
            return x, None
        ref = to_tensor(read_image(item.ref_path).rgb)
        if ref.shape != x.shape:
            raise SclleError(
                f"reference {item.ref_path.name} is {ref.shape[-1]}x{ref.shape[-2]} but the input is "
                f"{x.shape[-1]}x{x.shape[-2]}",
                item.input_path,
            )
        return x, ref

    def content_key(self, item: DatasetItem) -> str:
        """Hash of what the scores of ``item`` depend on: file contents (+ reference, + index)."""
        h = hashlib.sha1()
        h.update(_file_digest(item.input_path))
        if item.ref_path is not None and item.ref_path != item.input_path:
            h.update(_file_digest(item.ref_path))
        if self.kind == "synthetic":
            h.update(f"#{item.index}".encode())
        return h.hexdigest()


def darken_synthetic(ref: torch.Tensor, protocol: SyntheticProtocol, index: int) -> torch.Tensor:
    """The synthetic low-light input for image number ``index`` (deterministic)."""
    from sclle.data.darken import darken_seeded

    y, _params = darken_seeded(ref, protocol.darken_protocol(), protocol.seed, index)
    return y


def _file_digest(path: Path) -> bytes:
    try:
        return hash_file(path, "sha1").digest()
    except OSError as exc:
        from sclle.errors import ImageReadError

        raise ImageReadError(f"cannot read file ({exc.strerror or exc})", path) from exc


def _find(folder: Path, recursive: bool) -> list[Path]:
    from sclle.imageio import find_images

    found, _errors = find_images([folder], recursive=recursive)  # an empty folder is reported by the caller
    return sorted(p for p, _base in found)


def _stem_key(path: Path, folder: Path) -> str:
    rel = path.relative_to(folder)
    return rel.with_suffix("").as_posix()


def _unique_keys(paths: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        k = _stem_key(p, folder)
        if k in out:
            raise SclleError(f"two images share the stem {k!r} ({out[k].name}, {p.name}); rename one", folder)
        out[k] = p
    return out


def _subfolder(root: Path, names: tuple[str, ...]) -> Path | None:
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def _scan(spec: DatasetSpec) -> list[DatasetItem]:
    root = spec.root
    if not root.exists():
        raise SclleError("dataset folder does not exist", root)
    if not root.is_dir():
        raise SclleError("dataset must be a folder of images", root)
    if spec.kind == "paired":
        low_dir, high_dir = _subfolder(root, _LOW_NAMES), _subfolder(root, _HIGH_NAMES)
        if low_dir is None or high_dir is None:
            raise SclleError("a paired dataset needs both low/ and high/ sub-folders", root)
        low = _unique_keys(_find(low_dir, spec.recursive), low_dir)
        high = _unique_keys(_find(high_dir, spec.recursive), high_dir)
        if not low:
            raise SclleError("no images found in low/", root)
        only_low, only_high = sorted(set(low) - set(high)), sorted(set(high) - set(low))
        if only_low or only_high:
            parts = []
            if only_low:
                parts.append(
                    f"{len(only_low)} in low/ without a high/ match (e.g. {', '.join(only_low[:3])})"
                )
            if only_high:
                parts.append(
                    f"{len(only_high)} in high/ without a low/ match (e.g. {', '.join(only_high[:3])})"
                )
            raise SclleError("unmatched files: " + "; ".join(parts) + " (files are matched by stem)", root)
        return [DatasetItem(k, low[k], high[k], i) for i, k in enumerate(natural_sorted(low))]
    files = _unique_keys(_find(root, spec.recursive), root)
    if not files:
        raise SclleError("no images found (empty folder or no supported image files)", root)
    if spec.kind == "synthetic":
        return [DatasetItem(k, files[k], files[k], i) for i, k in enumerate(natural_sorted(files))]
    return [DatasetItem(k, files[k], None, i) for i, k in enumerate(natural_sorted(files))]


def _split_name(text: str) -> tuple[str | None, str]:
    """``name=rest`` -> (name, rest) when the part before ``=`` looks like a name, else (None, text)."""
    if text.startswith("synthetic:"):
        return None, text
    head, sep, rest = text.partition("=")
    if sep and _NAME_RE.match(head) and not Path(text).exists():
        return head, rest
    return None, text


def is_paired_folder(path: str | Path) -> bool:
    """True when ``path`` holds ``low/`` and ``high/`` sub-folders."""
    p = Path(path)
    return p.is_dir() and _subfolder(p, _LOW_NAMES) is not None and _subfolder(p, _HIGH_NAMES) is not None


def parse_dataset(
    spec: str | Path | DatasetSpec,
    *,
    synthetic: bool = False,
    protocol: SyntheticProtocol | None = None,
    recursive: bool = False,
) -> DatasetSpec:
    """Turn a dataset string (see the module docstring) into a :class:`DatasetSpec`.

    ``synthetic=True`` treats a plain folder as normal-light images to darken with ``protocol``
    (the CLI's ``--synthetic``); query parameters of a ``synthetic:`` string override it.
    A folder with ``low/`` and ``high/`` sub-folders is detected as paired.
    """
    if isinstance(spec, DatasetSpec):
        return spec
    name, text = _split_name(str(spec))
    if text.startswith("synthetic:"):
        text = text[len("synthetic:") :]
        synthetic = True
        path_part, _, query = text.partition("?")
        base = protocol or SyntheticProtocol()
        params: dict[str, float | int] = {
            "gamma": base.gamma,
            "exposure": base.exposure,
            "peak": base.peak,
            "read_std": base.read_std,
            "seed": base.seed,
        }
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if key not in params:
                raise SclleError(f"unknown synthetic parameter {key!r} (known: {', '.join(params)})", spec)
            try:
                params[key] = int(value) if key == "seed" else float(value)
            except ValueError:
                raise SclleError(f"synthetic parameter {key}={value!r} is not a number", spec) from None
        protocol = SyntheticProtocol(**params)  # type: ignore[arg-type]
        text = path_part
    root = Path(text).expanduser()
    if name is None:
        name = root.resolve().name or str(root)
    if synthetic:
        return DatasetSpec(name, root, "synthetic", protocol or SyntheticProtocol(), recursive)
    kind: Kind = "paired" if is_paired_folder(root) else "folder"
    return DatasetSpec(name, root, kind, None, recursive)

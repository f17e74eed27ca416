"""Training configuration: nested dataclasses <-> YAML, with ``key.path=value`` overrides.

A config file holds any subset of the sections below; missing keys keep their defaults, unknown
keys are refused (with the known ones listed) so a typo cannot silently train something else::

    seed: 0
    device: auto            # auto | cpu | cuda | cuda:1
    data:     {dataset, root, split, pool, darken, gamma_range, exposure_range, ...}
    model:    {init, init_std, segmenter, vgg_weights}
    loss:     sclle.losses.objective.LossConfig (weights, margins, layers, ablation switches)
    optim:    {lr, betas, weight_decay, grad_clip, amp}
    schedule: {steps, batch, crop, n_pos, n_neg}
    logging:  {out, name, log_every, image_every, ckpt_every, val_every, keep_ckpts, ...}

A file may start with ``base: other.yaml`` (relative to the file) to change only a few keys of
another config (the ablation configs do this).

Overrides use the same paths: ``--set loss.use_contrastive=false --set optim.lr=5e-5``; values are
parsed as YAML and then converted to the field's type (so ``1e-4`` is a float, ``[2, 4]`` a tuple).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sclle.errors import SclleError
from sclle.losses.objective import LossConfig


@dataclass
class DataConfig:
    """Training inputs, the contrastive pool and the validation folder."""

    #: Street-scene dataset layout: camvid | cityscapes.
    dataset: str = "camvid"
    root: str = "../shared/data/camvid"
    split: str = "train"
    #: Folder written by ``sclle prepare-contrast``.
    pool: str = ".devdata/contrast_pool"
    #: Side at which pool statistics are computed (None: the training crop).
    pool_size: int | None = None
    #: Darken the training crops (DarkenProtocol: log-uniform gamma and exposure per image).
    darken: bool = True
    gamma_range: tuple[float, float] = (1.5, 4.0)
    exposure_range: tuple[float, float] = (0.4, 1.0)
    #: Poisson-Gaussian noise after darkening: photons at white (None: no noise) and read noise std.
    noise_peak: float | None = None
    noise_read_std: float = 0.0
    hflip: bool = True
    #: Folder of unlabelled photos mixed into the batches as they are (not darkened; semantic terms
    #: ignore them), e.g. the SICE Part1 frames: real exposures from dark to blown out.
    extra_dir: str | None = None
    #: Expected share of each batch taken from extra_dir (0: none).
    extra_fraction: float = 0.0
    #: device | cpu | none (see sclle.data.street).
    preload: str = "device"
    #: Held-out folder of real low-light images for validation (NIQE, brightness); None: none.
    val_dir: str | None = "../shared/data/DICM"
    val_max_images: int = 16
    #: Validation images are downscaled so their long side is at most this (speed).
    val_max_side: int = 512


@dataclass
class ModelConfig:
    """The enhancer's initialisation and the frozen networks."""

    #: scratch (N(0, init_std) conv weights, as the released trainers) | a registry name | a weights file.
    init: str = "scratch"
    init_std: float = 0.02
    #: Segmenter for the semantic CE term: None = the bundled default, or a name / file.
    segmenter: str | None = None
    #: VGG-16 weights file (None: the usual offline sources, see sclle.models.vgg).
    vgg_weights: str | None = None


@dataclass
class OptimConfig:
    """Adam on the enhancer only."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4
    #: Max global gradient norm (None: no clipping). The released trainer clips at 0.1.
    grad_clip: float | None = 0.1
    #: off | bf16 (CUDA only: autocast of enhancer, VGG and segmenter).
    amp: str = "off"


@dataclass
class ScheduleConfig:
    steps: int = 20000
    #: Global batch (split over DDP ranks).
    batch: int = 8
    crop: int = 256
    #: Positives / negatives drawn from the pool for each step.
    n_pos: int = 2
    n_neg: int = 2


@dataclass
class LoggingConfig:
    out: str = "runs/scl"
    #: Name of the exported model (file stem and registry name).
    name: str = "sclle-scl"
    log_every: int = 10
    image_every: int = 500
    ckpt_every: int = 1000
    val_every: int = 1000
    #: Checkpoints kept on disk (older ones are deleted; the final one is always kept).
    keep_ckpts: int = 3
    tensorboard: bool = True
    progress: bool = True
    #: Pool-statistics cache (None: ~/.cache/sclle/pool_stats).
    cache_dir: str | None = None


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        return from_dict(cls, d).validate()

    def validate(self) -> TrainConfig:
        """Refuse values that cannot train (one line naming the key); return ``self``.

        Checked when a config is loaded, so a NaN learning rate or ``steps: -5`` fails before any
        data is read instead of crashing mid-run or exiting 0 with an untrained export.
        """
        validate(self)
        return self


# --------------------------------------------------------------------------------------- validation


def _bad(key: str, value: Any, rule: str) -> SclleError:
    return SclleError(f"config {key}: {rule}, got {value!r}")


def _number(key: str, value: Any, *, low: float | None = None, above: float | None = None) -> None:
    """A finite number, ``>= low`` or ``> above`` when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(key, value, "must be a finite number")
    if low is not None and value < low:
        raise _bad(key, value, f"must be >= {low:g}")
    if above is not None and value <= above:
        raise _bad(key, value, f"must be > {above:g}")


def _choice(key: str, value: Any, known: Iterable[str]) -> None:
    known = tuple(known)
    if value not in known:
        raise _bad(key, value, f"must be one of {', '.join(known)}")


def _range(key: str, value: tuple[float, float], *, above: float) -> None:
    for v in value:
        _number(key, v, above=above)
    if value[0] > value[1]:
        raise _bad(key, list(value), "must be [low, high] with low <= high")


def validate(cfg: TrainConfig) -> None:
    """Raise :class:`SclleError` for the first value of ``cfg`` that cannot train (see TrainConfig.validate)."""
    from sclle.data.street import DATASETS

    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise _bad("seed", cfg.seed, "must be an integer >= 0")
    d = cfg.data
    _choice("data.dataset", d.dataset, DATASETS)
    _choice("data.preload", d.preload, ("device", "cpu", "none"))
    if d.pool_size is not None:
        _number("data.pool_size", d.pool_size, low=16)
    _range("data.gamma_range", d.gamma_range, above=0)
    _range("data.exposure_range", d.exposure_range, above=0)
    if d.noise_peak is not None:
        _number("data.noise_peak", d.noise_peak, above=0)
    _number("data.noise_read_std", d.noise_read_std, low=0)
    _number("data.extra_fraction", d.extra_fraction, low=0)
    if d.extra_fraction > 1:
        raise _bad("data.extra_fraction", d.extra_fraction, "must be between 0 and 1")
    _number("data.val_max_images", d.val_max_images, low=1)
    _number("data.val_max_side", d.val_max_side, low=16)
    _number("model.init_std", cfg.model.init_std, above=0)
    lc = cfg.loss
    for f in dataclasses.fields(lc.weights):
        _number(f"loss.weights.{f.name}", getattr(lc.weights, f.name), low=0)
    _number("loss.gram_margin", lc.gram_margin, low=0)
    _number("loss.brightness_margin", lc.brightness_margin, low=0)
    o = cfg.optim
    _number("optim.lr", o.lr, above=0)
    for b in o.betas:
        _number("optim.betas", b, low=0)
        if b >= 1:
            raise _bad("optim.betas", list(o.betas), "must be two numbers in [0, 1)")
    _number("optim.weight_decay", o.weight_decay, low=0)
    if o.grad_clip is not None:
        _number("optim.grad_clip", o.grad_clip, low=0)
    _choice("optim.amp", o.amp, ("off", "bf16"))
    s = cfg.schedule
    _number("schedule.steps", s.steps, low=1)
    _number("schedule.batch", s.batch, low=1)
    _number("schedule.crop", s.crop, low=16)
    _number("schedule.n_pos", s.n_pos, low=1)
    _number("schedule.n_neg", s.n_neg, low=1)
    g = cfg.logging
    if not str(g.out).strip():
        raise _bad("logging.out", g.out, "must name a folder")
    if not g.name or any(c in g.name for c in "/\\") or g.name in (".", ".."):
        raise _bad("logging.name", g.name, "must be a plain file stem (no path separators)")
    _number("logging.log_every", g.log_every, low=1)
    for key in ("image_every", "ckpt_every", "val_every"):
        _number(f"logging.{key}", getattr(g, key), low=0)
    if g.keep_ckpts < 2:
        raise _bad(
            "logging.keep_ckpts",
            g.keep_ckpts,
            "must be >= 2 (the previous checkpoint is the fallback when the latest is unreadable)",
        )


# --------------------------------------------------------------------------------------- conversion


def to_dict(obj: Any) -> Any:
    """Dataclasses -> plain dicts (tuples -> lists), YAML/JSON friendly."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except (TypeError, ValueError, SclleError) as exc:
                errors.append(str(exc))
        raise SclleError(f"{where}: cannot use {value!r} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in args:
            raise SclleError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, Mapping):
            raise SclleError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SclleError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise SclleError(f"{where}: expected {len(args)} values, got {list(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise SclleError(f"{where}: expected true/false, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise SclleError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SclleError(f"{where}: expected a number, got {value!r}") from None
    if hint is int:
        if isinstance(value, bool):
            raise SclleError(f"{where}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise SclleError(f"{where}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise SclleError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if hint is str:
        if isinstance(value, (dict, list)):
            raise SclleError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, d: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a (nested) mapping, converting values to the fields' types."""
    if not isinstance(d, Mapping):
        raise SclleError(f"{where or cls.__name__}: expected a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise SclleError(
            f"unknown config key(s) {[f'{where}.{u}'.lstrip('.') for u in unknown]}; "
            f"known in {where or 'the top level'}: {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SclleError(f"{where or cls.__name__}: {exc}") from None


def apply_overrides(d: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to a nested dict in place (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise SclleError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise SclleError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = d
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise SclleError(f"override {item!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return d


def _read_yaml(p: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a dict, with its ``base:`` file (path relative to it) merged underneath."""
    if not p.is_file():
        raise SclleError("config file not found", p)
    if p.resolve() in seen:
        raise SclleError("config files include each other (base: loop)", p)
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise SclleError(f"invalid YAML ({first})", p) from None
    if not isinstance(loaded, dict):
        raise SclleError("config must be a mapping of sections", p)
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    merged = _read_yaml(p.parent / str(base), (*seen, p.resolve()))
    _merge(merged, loaded)
    return merged


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults <- the YAML file at ``path`` (and the ``base:`` file it names) <- ``overrides``."""
    d: dict[str, Any] = TrainConfig().to_dict()
    if path is not None:
        _merge(d, _read_yaml(Path(path)))
    apply_overrides(d, overrides)
    return TrainConfig.from_dict(d)


def _merge(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (all fields, so the file alone reproduces the run)."""
    from sclle.core.files import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

"""One registry of "image -> image" enhancement methods: identity, classical baselines, DCE-Nets.

Evaluation and benchmarks take method *names* so that every method runs through the same code:

* ``input`` (alias ``none``): the image unchanged;
* the classical baselines of :mod:`sclle.enhancement.baselines` (``gamma``, ``he``, ``clahe``, ``lime``, ``msrcr``);
* every enhancer in the weights registry (``sclle.list_models()``), optionally with a mode suffix,
  ``scl-lle-official@fast`` or ``scl-lle-official@fast=0.25``;
* a path to a DCE-Net checkpoint;
* any of these with a display label: ``ours-no-lc=runs/no_lc/export/model.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sclle.errors import SclleError

if TYPE_CHECKING:
    from sclle.core.registry import Registry
    from sclle.enhancement.baselines import BaselineInfo

ImageFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Method:
    """A named image -> image function on (B, 3, H, W) tensors in [0, 1]."""

    name: str
    fn: ImageFn
    kind: str  # "identity" | "baseline" | "model"
    description: str = ""
    #: Changes whenever the output could change (weights hash, parameters); keys result caches.
    fingerprint: str = ""
    meta: dict = field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _baselines() -> Registry[BaselineInfo]:
    """The baselines registry, imported late: it pulls in OpenCV and SciPy."""
    from sclle.enhancement.baselines import BASELINES

    return BASELINES


def list_methods() -> list[str]:
    from sclle.models.registry import list_models

    return ["input", *sorted(_baselines()), *(e.name for e in list_models())]


def _parse_mode(spec: str) -> tuple[str, float | str | None]:
    """``NAME``, ``NAME@fast`` or ``NAME@fast=0.25`` -> (NAME, fast_scale: None | "auto" | float)."""
    if "@" not in spec:
        return spec, None
    base, mode = spec.rsplit("@", 1)
    if mode == "fast":
        return base, "auto"
    if mode.startswith("fast="):
        try:
            value = float(mode.split("=", 1)[1])
        except ValueError:
            value = -1.0
        if 0.0 < value <= 1.0:
            return base, value
    raise SclleError(f"bad method mode {mode!r} in {spec!r}; use NAME@fast or NAME@fast=S with 0 < S <= 1")


def method_label(spec: str) -> str:
    """The name a method is shown under: ``LABEL`` of ``LABEL=SPEC``, else the spec itself."""
    label, sep, _ = spec.partition("=")
    return label if sep and label and "/" not in label and "@" not in label else spec


def get_method(spec: str, *, device: str = "cpu", weights: str | Path | None = None) -> Method:
    """Resolve a method by name (see module docstring) or checkpoint path."""
    from sclle.enhancement.api import build_engine
    from sclle.models.registry import MODELS, get_entry, sha256_file

    label = method_label(spec)
    if label != spec:
        method = get_method(spec.partition("=")[2], device=device, weights=weights)
        method.name = label
        return method
    if spec in {"input", "none"}:
        return Method(spec, _identity, "identity", "the input, unchanged", fingerprint="identity")
    baselines = _baselines()
    if spec in baselines:
        b = baselines.get(spec)
        fp = hashlib.sha256(f"{spec}:{getattr(b, 'description', '')}".encode()).hexdigest()[:16]
        return Method(spec, b.fn, "baseline", getattr(b, "description", ""), fingerprint=fp)
    base, fast = _parse_mode(spec)
    if base in MODELS:
        entry = get_entry(base)
        engine = build_engine(base, weights=weights, fast_scale=fast, device=device)
        fp = f"{entry.sha256[:16]}:{engine.scale}"
        if entry.arch_kwargs:  # same file, other architecture settings (e.g. adaptive exposure): other scores
            kw = json.dumps(dict(entry.arch_kwargs), sort_keys=True)
            fp += ":" + hashlib.sha256(kw.encode()).hexdigest()[:8]
        return Method(spec, engine, "model", entry.meta.get("source", ""), fingerprint=fp, meta=entry.meta)
    p = Path(base).expanduser()
    if p.is_file():
        engine = build_engine(str(p), fast_scale=fast, device=device)
        fp = f"{sha256_file(p)[:16]}:{engine.scale}"
        arch = engine.net.arch
        return Method(spec, engine, "model", f"{arch} weights from {p}", fingerprint=fp)
    known = ", ".join(list_methods())
    raise SclleError(f"unknown method {spec!r}: not a registered name nor a weights file; known: {known}")

"""The model zoo: every enhancer architecture and every named set of weights, in two registries.

``ARCHITECTURES`` maps an architecture name (``dce-net``, ``zero-dce++``, ``sci``, ``ruas``) to its class;
``MODELS`` maps a model name (``sclle-default``, ``scl-lle-official``, ``sci-medium`` ...) to its
:class:`~sclle.core.weights.WeightsEntry`. Each architecture module declares its own entries next to
its builder (``WEIGHTS``); bundled entries come from ``sclle/weights/<name>.json``. Files are found,
hash-checked and read by :mod:`sclle.core.weights`.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path

import torch

from sclle.core.registry import Registry, RegistryError
from sclle.core.weights import (
    SHA_IN_NAME,
    WeightsEntry,
    cache_dir,
    check_hash,
    read_state_dict,
    resolve_file,
    sha256_file,
)
from sclle.errors import WeightsError
from sclle.models import dce, ruas, sci, zero_dce_pp
from sclle.models.base import Enhancer, load_state

__all__ = [
    "ARCHITECTURES",
    "MODELS",
    "WeightsEntry",
    "build_model",
    "cache_dir",
    "default_model_name",
    "get_entry",
    "list_architectures",
    "list_models",
    "load_weights",
    "read_state_dict",
    "resolve_weights",
    "sha256_file",
]


class UnknownModelError(RegistryError, WeightsError):
    """An enhancer or architecture name the registry does not know (a weights problem for the CLI)."""


ARCHITECTURES: Registry[type[Enhancer]] = Registry("enhancer architecture", error=UnknownModelError)
MODELS: Registry[WeightsEntry] = Registry("model", error=UnknownModelError)

for _cls in (dce.DCENet, zero_dce_pp.ZeroDCEPP, sci.SCI, ruas.RUAS):
    ARCHITECTURES.register(_cls.arch, _cls)
for _module in (dce, zero_dce_pp, sci, ruas):
    for _entry in _module.WEIGHTS:
        MODELS.register(_entry.name, _entry)


def _register_bundled() -> None:
    """Register every ``sclle/weights/<name>.json`` (kind ``enhancer``) that has its file beside it."""
    try:
        folder = resources.files("sclle") / "weights"
        items = list(folder.iterdir())
    except (FileNotFoundError, ModuleNotFoundError):
        return
    for item in sorted(items, key=lambda p: p.name):
        if not item.name.endswith(".json"):
            continue
        meta = json.loads(item.read_text())
        if meta.get("kind") != "enhancer" or "file" not in meta:
            continue  # e.g. the segmentation prior's metadata
        if not (folder / meta["file"]).is_file():
            continue
        MODELS.register(
            meta["name"],
            WeightsEntry(
                name=meta["name"],
                sha256=meta["sha256"],
                file_name=meta["file"],
                arch=meta.get("arch", "dce-net"),
                arch_kwargs=meta.get("arch_kwargs", {}),
                bundled=meta["file"],
                default=bool(meta.get("default", False)),
                meta=meta,
            ),
        )


_register_bundled()


def list_models() -> list[WeightsEntry]:
    """All registered enhancer weights (bundled default first, then bundled, then remote, by name)."""
    return sorted(MODELS.values(), key=lambda e: (e.bundled is None, not e.default, e.name))


def list_architectures() -> list[str]:
    return ARCHITECTURES.names()


def get_entry(name: str) -> WeightsEntry:
    return MODELS.get(name)


def default_model_name() -> str | None:
    """Name of the default enhancer (the bundled model marked default), if one ships."""
    for e in list_models():
        if e.default:
            return e.name
    return None


def resolve_weights(
    name: str, *, path: str | Path | None = None, download: bool = True, progress: bool = True
) -> Path:
    """A local, hash-verified file for the registry entry ``name``."""
    return resolve_file(
        get_entry(name),
        path=path,
        download=download,
        progress=progress,
        pass_hint="pass it with --weights PATH",
    )


def build_model(
    state_dict: dict[str, torch.Tensor], *, arch: str = "dce-net", source: str | Path = "weights", **kwargs
) -> Enhancer:
    """An ``arch`` network holding ``state_dict`` (strict, subnormals flushed), in eval mode."""
    net = ARCHITECTURES.get(arch)(**kwargs)
    return load_state(net, state_dict, source).eval()


_warned: set[str] = set()


def _research_notice(entry: WeightsEntry) -> None:
    """Say once per process that a model's licence allows research use only."""
    if entry.research_only and entry.name not in _warned and not os.environ.get("SCLLE_NO_LICENCE_NOTICE"):
        _warned.add(entry.name)
        print(
            f"note: {entry.name} weights: {entry.licence} (the authors' weights, not sclle's)",
            file=sys.stderr,
        )


def _entry_for_file(p: Path) -> WeightsEntry | None:
    """The registered entry whose sha256 this file has (a released checkpoint under any name)."""
    digest = sha256_file(p)
    for e in list_models():  # the default first: one file may back several entries (sclle-fixed-strength)
        if e.sha256 == digest:
            return e
    return None


def load_weights(
    name_or_path: str | Path | None = None,
    *,
    weights: str | Path | None = None,
    sha256: str | None = None,
    arch: str | None = None,
    download: bool = True,
    progress: bool = True,
) -> tuple[Enhancer, WeightsEntry | None]:
    """Load an enhancer by registry name or from a file; return it with its registry entry (if any).

    ``name_or_path=None`` with ``weights=None`` is the default model; with ``weights`` alone, the file is
    recognised by its hash (a registered checkpoint under any name) or loaded as a plain ``arch``
    (DCE-Net by default) state_dict. A bare file is checked against ``sha256`` if given, or against the
    hash prefix in its name (``name-<hex>.pth``) when it has one.
    """
    if name_or_path is None and weights is not None:
        name_or_path, weights = weights, None
    if name_or_path is None:
        name_or_path = default_model_name()
        if name_or_path is None:
            known = ", ".join(e.name for e in list_models())
            raise WeightsError(
                "no default model is bundled with this version; choose one with --model "
                f"(known: {known}) and provide its file with --weights PATH"
            )
    key = str(name_or_path)
    if key in MODELS:
        entry = get_entry(key)
        path = resolve_weights(key, path=weights, download=download, progress=progress)
        net = build_model(read_state_dict(path), arch=entry.arch, source=path, **dict(entry.arch_kwargs))
        _research_notice(entry)
        return net, entry
    if weights is not None:
        raise WeightsError(f"--weights is for a registered model name; {key!r} is already a weights file")
    p = Path(key).expanduser()
    if not p.exists():
        if p.suffix in {".pth", ".pt", ".safetensors"} or os.sep in key or "/" in key:
            raise WeightsError("weights file not found", p)
        get_entry(key)  # raises with the list of known names
    if p.is_dir():
        raise WeightsError("is a folder, expected a weights file", p)
    expected = sha256
    if expected is None:
        m = SHA_IN_NAME.search(p.name)
        expected = m.group(1) if m else None
    if expected is not None:
        check_hash(p, expected.lower(), p.name)
    entry = _entry_for_file(p) if arch is None else None
    if entry is not None:
        net = build_model(read_state_dict(p), arch=entry.arch, source=p, **dict(entry.arch_kwargs))
        _research_notice(entry)
        return net, entry
    return build_model(read_state_dict(p), arch=arch or "dce-net", source=p), None

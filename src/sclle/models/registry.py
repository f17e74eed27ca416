"""Named enhancer weights, torchvision style.

An entry is either **bundled** (a safetensors file shipped inside the package: no download) or
**remote** (the URL where its authors publish it, plus its sha256). Resolution order for a remote
entry: an explicit path -> ``$SCLLE_WEIGHTS_DIR`` -> the cache ``<torch.hub.get_dir()>/checkpoints``
(also under the authors' original file name) -> a download that is hash-checked before use.
Every file is hash-checked against its entry; a mismatch is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from sclle.errors import WeightsError
from sclle.models.dce import DCENet, flush_subnormals_

_SHA_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt|safetensors)$")


@dataclass(frozen=True)
class WeightsEntry:
    """One named set of DCE-Net weights and what is known about it."""

    name: str
    sha256: str
    #: Cache file name, torchvision style: ``<name>-<first 8 hex of sha256>.<ext>``.
    file_name: str
    url: str | None = None
    #: File name inside ``sclle/weights`` for bundled entries.
    bundled: str | None = None
    #: Other names the file is commonly saved under (looked up in the weights dir / cache).
    aliases: tuple[str, ...] = ()
    default: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fast_scale(self) -> float:
        """Default downscale for ``--fast`` with these weights (see BENCHMARKS.md)."""
        return float(self.meta.get("fast_scale", 0.5))


_REGISTRY: dict[str, WeightsEntry] = {}


def register(entry: WeightsEntry) -> WeightsEntry:
    _REGISTRY[entry.name] = entry
    return entry


register(
    WeightsEntry(
        name="scl-lle-official",
        sha256="fc5aa74a6674bb747b325e5a06efbfea2973c10cc93cf25cd2b8f33a038e821f",
        file_name="scl-lle-official-fc5aa74a.pth",
        url="https://github.com/LingLIx/SCL-LLE/raw/main/checkpoints/SCL-LLE.pth",
        aliases=("SCL-LLE.pth",),
        meta={
            "params": 79416,
            "source": "Liang et al., Semantically Contrastive Learning for Low-light Image Enhancement, "
            "AAAI 2022 (authors' release, repository LingLIx/SCL-LLE, checkpoints/SCL-LLE.pth)",
            "licence": "no licence file in the authors' repository: research and comparison use only",
            "subnormal_params": 41669,
            "fast_scale": 0.5,
        },
    )
)
register(
    WeightsEntry(
        name="zero-dce-official",
        sha256="a4395acb874f320375d9704997cef874eaaaaa26a1777ceb29a92b70f74c3612",
        file_name="zero-dce-official-a4395acb.pth",
        url="https://github.com/Li-Chongyi/Zero-DCE/raw/master/Zero-DCE_code/snapshots/Epoch99.pth",
        aliases=("ZeroDCE-Epoch99.pth", "Epoch99.pth"),
        meta={
            "params": 79416,
            "source": "Guo et al., Zero-Reference Deep Curve Estimation, CVPR 2020 (authors' release, "
            "repository Li-Chongyi/Zero-DCE, Zero-DCE_code/snapshots/Epoch99.pth)",
            "licence": "CC BY-NC 4.0 (non-commercial research use)",
            "subnormal_params": 19266,
            "fast_scale": 0.5,
        },
    )
)


def _register_bundled() -> None:
    """Register every ``sclle/weights/<name>.json`` that has its safetensors file beside it."""
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
        weights_file = meta["file"]
        if not (folder / weights_file).is_file():
            continue
        register(
            WeightsEntry(
                name=meta["name"],
                sha256=meta["sha256"],
                file_name=weights_file,
                bundled=weights_file,
                default=bool(meta.get("default", False)),
                meta=meta,
            )
        )


_register_bundled()


def list_models() -> list[WeightsEntry]:
    """All registered enhancer weights (bundled first, then remote)."""
    return sorted(_REGISTRY.values(), key=lambda e: (e.bundled is None, not e.default, e.name))


def get_entry(name: str) -> WeightsEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise WeightsError(f"unknown model {name!r}; known models: {known}") from None


def default_model_name() -> str | None:
    """Name of the default enhancer (the bundled model marked default), if one ships."""
    for e in list_models():
        if e.default:
            return e.name
    return None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _check_hash(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise WeightsError(
            f"sha256 mismatch for {what}: expected {expected[:16]}..., got {actual[:16]}...; "
            "refusing to load (file corrupt, truncated or not these weights)",
            path,
        )


def resolve_weights(
    name: str, *, path: str | Path | None = None, download: bool = True, progress: bool = True
) -> Path:
    """Return a local, hash-verified file for the registry entry ``name``."""
    entry = get_entry(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError("weights file not found", p)
        _check_hash(p, entry.sha256, entry.name)
        return p
    if entry.bundled is not None:
        p = Path(str(resources.files("sclle") / "weights" / entry.bundled))
        _check_hash(p, entry.sha256, entry.name)
        return p
    candidates: list[Path] = []
    env_dir = os.environ.get("SCLLE_WEIGHTS_DIR")
    for folder in ([Path(env_dir)] if env_dir else []) + [cache_dir()]:
        for fname in (entry.file_name, *entry.aliases):
            candidates.append(folder / fname)
    for p in candidates:
        if p.is_file():
            _check_hash(p, entry.sha256, entry.name)
            return p
    target = cache_dir() / entry.file_name
    how = (
        f"download {entry.url} and pass it with --weights PATH, or put it at {target} "
        "(or in the folder named by $SCLLE_WEIGHTS_DIR)"
    )
    if not download or entry.url is None:
        raise WeightsError(f"weights for {entry.name!r} are not available offline; {how}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        torch.hub.download_url_to_file(entry.url, str(tmp), hash_prefix=None, progress=progress)
    except Exception as exc:  # network errors come in many types
        tmp.unlink(missing_ok=True)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"could not download weights for {entry.name!r} ({reason}); {how}") from None
    try:
        _check_hash(tmp, entry.sha256, entry.name)
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a DCE-Net state_dict from .pth/.pt (legacy pickles included) or .safetensors.

    Accepts plain state_dicts, trainer checkpoints (``{"model": state_dict, ...}``) and
    DataParallel/DDP prefixes (``module.``).
    """
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(p), device="cpu")
        else:
            # weights_only: never execute code from a checkpoint. map_location: the released
            # files are pickles of CUDA storages.
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"cannot read weights ({reason[:200]})", p) from None
    if isinstance(sd, dict):
        for key in ("model", "state_dict", "enhancer"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError("not a DCE-Net state_dict", p)
    return {k.removeprefix("module."): v for k, v in sd.items()}


def build_model(state_dict: dict[str, torch.Tensor], *, source: str | Path = "weights") -> DCENet:
    net = DCENet()
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"not DCE-Net weights ({first})", source) from None
    # Subnormal weights make CPU convolutions ~30x slower and zeroing them changes no output bit.
    flush_subnormals_(net)
    return net.eval()


def load_weights(
    name_or_path: str | Path | None = None,
    *,
    weights: str | Path | None = None,
    sha256: str | None = None,
    download: bool = True,
    progress: bool = True,
) -> tuple[DCENet, WeightsEntry | None]:
    """Load a DCE-Net by registry name or from a file; return it with its registry entry (if any).

    ``name_or_path=None`` means the default model. A bare file is checked against ``sha256`` if
    given, or against the hash prefix in its name (``name-<hex>.pth``) when it has one.
    """
    if name_or_path is None:
        name_or_path = default_model_name()
        if name_or_path is None:
            known = ", ".join(e.name for e in list_models())
            raise WeightsError(
                "no default model is bundled with this version; choose one with --model "
                f"(known: {known}) and provide its file with --weights PATH"
            )
    key = str(name_or_path)
    if key in _REGISTRY:
        entry = get_entry(key)
        path = resolve_weights(key, path=weights, download=download, progress=progress)
        return build_model(read_state_dict(path), source=path), entry
    p = Path(key).expanduser()
    if not p.exists():
        if p.suffix in {".pth", ".pt", ".safetensors"} or os.sep in key:
            raise WeightsError("weights file not found", p)
        get_entry(key)  # raises with the list of known names
    if p.is_dir():
        raise WeightsError("is a folder, expected a weights file", p)
    expected = sha256
    if expected is None:
        m = _SHA_IN_NAME.search(p.name)
        expected = m.group(1) if m else None
    if expected is not None:
        _check_hash(p, expected.lower(), p.name)
    return build_model(read_state_dict(p), source=p), None

"""One resolver for every weights file (enhancers, peers, segmenter, VGG), torchvision style.

An entry is either **bundled** (a file inside the package's ``weights/`` folder: no download) or
**remote** (where its authors publish it, plus its sha256). A remote entry is looked up in this order:
an explicit path -> ``$SCLLE_WEIGHTS_DIR`` (one folder, or several separated by ``os.pathsep``) -> ``<torch.hub.get_dir()>/checkpoints`` (under the cache name
``<name>-<sha256[:8]>.<ext>`` or any alias, e.g. the authors' file name) -> a download that is
hash-checked before it is kept. Nothing loads unless its hash matches and every tensor is finite.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sclle.core.files import atomic_save, sha256_file
from sclle.errors import WeightsError

#: ``name-<hex>.ext``: a file that carries (a prefix of) its own sha256 in its name.
SHA_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt|safetensors)$")
WEIGHTS_DIR_ENV = "SCLLE_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightsEntry:
    """One named weights file and what is known about it (licence, training data, defaults)."""

    name: str
    sha256: str
    #: Cache file name, torchvision style: ``<name>-<first 8 hex of sha256>.<ext>``.
    file_name: str
    #: Architecture name in the model registry; ``arch_kwargs`` are passed to its builder.
    arch: str = "dce-net"
    url: str | None = None
    #: File name inside ``sclle/weights`` for bundled entries.
    bundled: str | None = None
    #: Other names the file is commonly saved under (looked up in the weights dir and the cache).
    aliases: tuple[str, ...] = ()
    default: bool = False
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fast_scale(self) -> float:
        """Default downscale for fast mode with these weights (see BENCHMARKS.md)."""
        return float(self.meta.get("fast_scale", 0.5))

    @property
    def licence(self) -> str:
        return str(self.meta.get("licence", ""))

    @property
    def research_only(self) -> bool:
        """Weights whose licence allows research use only (or states no licence at all)."""
        return bool(self.meta.get("research_only", False))


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def bundled_path(file_name: str) -> Path:
    return Path(str(resources.files("sclle") / "weights" / file_name))


def check_hash(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if not actual.startswith(expected.lower()):
        raise WeightsError(
            f"sha256 mismatch for {what}: expected {expected[:16]}..., got {actual[:16]}...; "
            "refusing to load (file corrupt, truncated or not these weights)",
            path,
        )


def candidates(entry: WeightsEntry) -> list[Path]:
    """Where a remote entry's file may already be, in lookup order."""
    env_dirs = [Path(d) for d in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep) if d]
    folders = [*env_dirs, cache_dir()]
    return [folder / name for folder in folders for name in (entry.file_name, *entry.aliases)]


def resolve_file(
    entry: WeightsEntry,
    *,
    path: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    pass_hint: str = "pass its path",
) -> Path:
    """A local, hash-verified file for ``entry`` (see the module docstring for the order).

    ``pass_hint`` is how the caller's user gives a file explicitly (the CLI: ``pass it with --weights PATH``).
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError("weights file not found" if not p.is_dir() else "is a folder, not a file", p)
        check_hash(p, entry.sha256, entry.name)
        return p
    if entry.bundled is not None:
        p = bundled_path(entry.bundled)
        check_hash(p, entry.sha256, entry.name)
        return p
    for p in candidates(entry):
        if p.is_file():
            check_hash(p, entry.sha256, entry.name)
            return p
    target = cache_dir() / entry.file_name
    lead = f"download {entry.url} and {pass_hint}, or " if entry.url else f"get the file and {pass_hint}, or "
    how = f"{lead}put it at {target} (or in the folder named by ${WEIGHTS_DIR_ENV})"
    if not download or entry.url is None:
        raise WeightsError(f"weights for {entry.name!r} are not available offline; {how}")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = entry.url

    def fetch(tmp: Path) -> None:  # kept only once its hash matches; atomic_save removes it otherwise
        torch.hub.download_url_to_file(url, str(tmp), hash_prefix=None, progress=progress)
        check_hash(tmp, entry.sha256, entry.name)

    try:
        return atomic_save(target, fetch)
    except WeightsError:
        raise
    except Exception as exc:  # network errors come in many types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"could not download weights for {entry.name!r} ({reason}); {how}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # torch's refusal of a pickle ends with advice to set weights_only=False: never the right advice here.
    text = text.split("WeightsUnpickler error:")[-1].strip() if "WeightsUnpickler" in text else text
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:200]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from .pth/.pt (legacy pickles included, never executing code) or .safetensors.

    Accepts plain state_dicts, trainer checkpoints (``{"model": state_dict, ...}``) and DataParallel/DDP
    prefixes (``module.``). Every tensor must be finite.
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
        raise WeightsError(
            f"cannot read weights: {_first_line(exc)} (not a weights file, or corrupt)", p
        ) from None
    if isinstance(sd, dict):
        for key in ("model", "state_dict", "enhancer"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError("not a state_dict of tensors", p)
    sd = {str(k).removeprefix("module."): v for k, v in sd.items()}
    check_finite(sd, p)
    return sd


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Refuse weights with NaN or inf: they would turn every output into NaN without an error."""
    for key, v in state_dict.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n = int((~torch.isfinite(v)).sum())
            raise WeightsError(
                f"tensor {key!r} holds {n} non-finite value(s) (NaN/inf); refusing to load", source
            )


def load_into(
    net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | Path, what: str
) -> nn.Module:
    """``net.load_state_dict(strict=True)`` with the whole reason in one line when it does not fit."""
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(v.shape)})"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(
                f"missing {len(missing)} key(s): {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
            )
        if unexpected:
            more = " ..." if len(unexpected) > 4 else ""
            parts.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:4])}{more}")
        if wrong:
            parts.append(f"wrong shape: {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}")
        raise WeightsError(f"not {what} weights ({'; '.join(parts)})", source)
    net.load_state_dict(state_dict, strict=True)
    return net


#: Weights smaller than this cannot change a float32 activation of the enhancers (their products with
#: activations are far below the resolution of anything they are added to), but they make subnormal
#: products, which x86 CPUs compute in microcode: a from-scratch DCE-Net whose dead channels had decayed
#: to 1e-35..1e-31 ran 24x slower on an Intel Xeon until they were zeroed, with bit-identical curves
#: (BENCHMARKS.md, "Subnormal weights").
NEGLIGIBLE_WEIGHT = 1e-30


def flush_subnormals_(module: nn.Module, *, below: float | None = None) -> int:
    """Replace subnormal float parameters (or, with ``below``, every one smaller in magnitude) by zero,
    in place; return how many were replaced.

    The released checkpoints hold tens of thousands of subnormal weights (41,669 in SCL-LLE.pth).
    x86 CPUs handle subnormals in microcode, which makes convolutions ~30x slower; their
    contribution is below float32 resolution of any activation, so zeroing them gives
    bit-identical outputs. Loading uses ``below=NEGLIGIBLE_WEIGHT``, which also removes the tiny normal
    weights whose products with small activations are subnormal.
    """
    n = 0
    with torch.no_grad():
        for p in list(module.parameters()) + list(module.buffers()):
            if not p.is_floating_point():
                continue
            floor = max(below or 0.0, torch.finfo(p.dtype).tiny)
            mask = (p != 0) & (p.abs() < floor)
            k = int(mask.sum())
            if k:
                p.masked_fill_(mask, 0.0)
                n += k
    return n


def load_entry_state_dict(
    entry: WeightsEntry, *, path: str | Path | None = None, download: bool = True, progress: bool = True
) -> tuple[dict[str, torch.Tensor], Path]:
    """Resolve, hash-check and read ``entry``'s weights; returns the state_dict and the file it came from."""
    p = resolve_file(entry, path=path, download=download, progress=progress)
    return read_state_dict(p), p

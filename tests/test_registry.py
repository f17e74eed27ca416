"""Weights registry: resolution order, hash checks, clear offline errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from sclle.errors import WeightsError
from sclle.models import registry
from sclle.models.dce import DCENet

from conftest import shared_path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("SCLLE_WEIGHTS_DIR", raising=False)

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_entries_have_torchvision_style_names():
    for e in registry.list_models():
        assert e.sha256[:8] in e.file_name or e.bundled
        assert len(e.sha256) == 64
        expected = 79416 if e.arch == "dce-net" else None
        assert isinstance(e.meta.get("params"), int) or e.bundled
        assert expected is None or e.meta.get("params") == expected or e.bundled
    assert {"scl-lle-official", "zero-dce-official"} <= {e.name for e in registry.list_models()}


def test_unknown_name_lists_known(hub):
    with pytest.raises(WeightsError, match="known: .*scl-lle-official"):
        registry.load_weights("no-such-model")


def test_offline_without_file_says_how_to_provide_it(hub):
    with pytest.raises(WeightsError) as err:
        registry.resolve_weights("scl-lle-official")
    msg = str(err.value)
    assert "\n" not in msg
    assert "--weights" in msg and "scl-lle-official-fc5aa74a.pth" in msg and "github.com/LingLIx" in msg


def test_hash_mismatch_is_refused(hub, tmp_path):
    bad = tmp_path / "SCL-LLE.pth"
    torch.save(DCENet().state_dict(), bad)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        registry.load_weights("scl-lle-official", weights=bad)
    # also when found in the cache under the expected name
    hub.mkdir(parents=True)
    shutil.copy(bad, hub / "scl-lle-official-fc5aa74a.pth")
    with pytest.raises(WeightsError, match="refusing to load"):
        registry.load_weights("scl-lle-official")


def test_hash_prefix_in_file_name_is_checked(tmp_path):
    good = tmp_path / "mine.pth"
    torch.save(DCENet().state_dict(), good)
    net, entry = registry.load_weights(good)
    assert entry is None and isinstance(net, DCENet)
    named = tmp_path / "mine-deadbeef.pth"
    shutil.copy(good, named)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        registry.load_weights(named)
    h = registry.sha256_file(good)
    ok = tmp_path / f"mine-{h[:10]}.pth"
    shutil.copy(good, ok)
    registry.load_weights(ok)


def test_missing_and_non_dce_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        registry.load_weights(tmp_path / "nope.pth")
    other = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match="not dce-net weights"):
        registry.load_weights(other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        registry.load_weights(junk)


def test_trainer_checkpoint_and_safetensors_and_ddp_prefix(tmp_path):
    from safetensors.torch import save_file

    net = DCENet()
    ck = tmp_path / "ck.pt"
    torch.save({"model": {f"module.{k}": v for k, v in net.state_dict().items()}, "step": 3}, ck)
    st = tmp_path / "w.safetensors"
    save_file(net.state_dict(), str(st))
    for p in (ck, st):
        loaded, _ = registry.load_weights(p)
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v)


def test_resolves_from_weights_dir_and_cache(hub, monkeypatch):
    src = shared_path("weights", "SCL-LLE.pth")
    monkeypatch.setenv("SCLLE_WEIGHTS_DIR", str(src.parent))
    assert registry.resolve_weights("scl-lle-official") == src
    monkeypatch.delenv("SCLLE_WEIGHTS_DIR")
    hub.mkdir(parents=True)
    shutil.copy(src, hub / "scl-lle-official-fc5aa74a.pth")
    assert registry.resolve_weights("scl-lle-official").parent == hub


def test_weights_file_without_model_is_recognised_by_its_hash(tmp_path, shared):
    import shutil

    copy = tmp_path / "renamed.pth"
    shutil.copy(shared / "weights" / "ZeroDCE-Epoch99.pth", copy)
    net, entry = registry.load_weights(None, weights=copy)
    assert entry is not None and entry.name == "zero-dce-official"
    plain = tmp_path / "mine.pth"
    torch.save(DCENet().state_dict(), plain)
    net, entry = registry.load_weights(None, weights=plain)
    assert entry is None and isinstance(net, DCENet)


def test_weight_errors_say_the_whole_reason(tmp_path):
    sd = DCENet().state_dict()
    sd["e_conv7.weight"] = torch.zeros(24, 64, 5, 5)
    bad = tmp_path / "shape.pth"
    torch.save(sd, bad)
    with pytest.raises(
        WeightsError, match=r"wrong shape: e_conv7.weight \(24, 64, 5, 5\) \(expected \(24, 64, 3, 3\)\)"
    ):
        registry.load_weights(bad)
    nan = tmp_path / "nan.pth"
    sd = DCENet().state_dict()
    sd["e_conv1.bias"][0] = float("nan")
    torch.save(sd, nan)
    with pytest.raises(WeightsError, match="non-finite"):
        registry.load_weights(nan)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"e_conv1.weight": Evil()}, evil)
    with pytest.raises(WeightsError) as err:
        registry.load_weights(evil)
    assert "weights_only=False" not in str(err.value) and "\n" not in str(err.value)

"""Peer enhancers (Zero-DCE++, SCI, RUAS): released key layouts, reference outputs, modes, strength.

The reference forwards below are written from the descriptions in ``../shared/README.md`` ("Peer
enhancers' released weights") with ``torch.nn.functional`` on state_dict tensors only, so they check the
modules independently of how the modules are built; they run on random weights (no shared data needed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sclle.core.weights import WeightsEntry, load_into, resolve_file, sha256_file
from sclle.errors import SclleError, WeightsError
from sclle.models import ruas as ruas_mod
from sclle.models import sci as sci_mod
from sclle.models import zero_dce_pp as zdpp_mod
from sclle.models.base import Enhancer

from conftest import shared_path

ENTRIES: dict[str, WeightsEntry] = {e.name: e for m in (zdpp_mod, sci_mod, ruas_mod) for e in m.WEIGHTS}
BUILDERS: dict[str, Callable[..., Enhancer]] = {
    "zero-dce++": zdpp_mod.zero_dce_pp,
    "sci": sci_mod.sci,
    "ruas": ruas_mod.ruas,
}
#: Shared file of each entry (byte-identical copies of the authors' releases).
SHARED_FILES = {
    "zero-dce++-official": "ZeroDCEpp-Epoch99.pth",
    "sci-easy": "SCI-easy.pt",
    "sci-medium": "SCI-medium.pt",
    "sci-difficult": "SCI-difficult.pt",
    "ruas-lol": "RUAS-lol.pt",
    "ruas-upe": "RUAS-upe.pt",
    "ruas-dark": "RUAS-dark.pt",
}
#: ../shared/README.md: per-channel means, then pixels (0,0) / centre / last where listed, on DICM/05.jpg.
#: "Centre" is (H//2, W//2) of the output: (240, 318) for Zero-DCE++'s 480x636 crop.
REFERENCE: dict[str, tuple[tuple[float, ...], tuple[tuple[float, ...], ...] | None]] = {
    "zero-dce++-official": (
        (0.68706, 0.57686, 0.58292),
        ((0.89743, 0.73831, 0.76394), (1.0, 0.97352, 0.86927), (0.48088, 0.33867, 0.46171)),
    ),
    "zero-dce++-full-scale": ((0.69552, 0.57892, 0.58079), None),
    "sci-easy": ((0.64894, 0.60982, 0.57264), None),
    "sci-medium": ((0.77457, 0.72913, 0.74128), None),
    "sci-difficult": (
        (0.71479, 0.65423, 0.63784),
        ((0.87824, 0.80456, 0.73063), (1.0, 0.93557, 0.91531), (0.51912, 0.38048, 0.45334)),
    ),
    "ruas-lol": (
        (0.90577, 0.83252, 0.81175),
        ((1.12956, 1.03424, 1.08256), (1.07373, 1.06246, 1.03256), (0.909, 0.52979, 0.68358)),
    ),
    "ruas-upe": ((0.74386, 0.69154, 0.71186), None),
    "ruas-dark": ((0.85040, 0.79600, 0.79844), None),
}
#: One configuration per architecture variant, for the tests on random weights.
VARIANTS: dict[str, tuple[str, dict]] = {
    "zero-dce++": ("zero-dce++", {}),
    "sci": ("sci", {}),
    "ruas": ("ruas", {"denoise": False}),
    "ruas-denoise": ("ruas", {"denoise": True}),
}


# ------------------------------------------------------------------------------------------ helpers
def _random_net(variant: str, seed: int = 0) -> Enhancer:
    """A variant with random weights of the released shapes (tied tensors stay tied: set in place)."""
    arch, kwargs = VARIANTS[variant]
    net = BUILDERS[arch](**kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            # Smaller weights in RUAS's denoiser: its residual cells otherwise grow outputs to ~20.
            scale = (0.6 if name.endswith("weight") else 0.2) * (
                0.5 if name.startswith("denoise_net") else 1.0
            )
            p.copy_((torch.rand(p.shape, generator=g) - 0.5) * scale)
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_((torch.rand(b.shape, generator=g) - 0.5) * 0.4)
    return net.eval()


def _image(h: int, w: int, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(1, 3, h, w, generator=g)


def _dicm05() -> torch.Tensor:
    arr = (
        np.asarray(Image.open(shared_path("data", "DICM", "05.jpg")).convert("RGB"), dtype=np.float32) / 255.0
    )
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()
    assert x.shape == (1, 3, 480, 640)
    return x


def _released(name: str, **kwargs) -> Enhancer:
    entry = ENTRIES[name]
    path = shared_path("weights", "peers", SHARED_FILES[name])
    return BUILDERS[entry.arch](weights=entry, path=path, **kwargs)


def _full(net: Enhancer, x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Params and apply at the resolution given (what tiling uses)."""
    return net.apply(x, net(x), strength=strength)


# ------------------------------------------------------------- reference forwards (from the README)
def _conv(t: torch.Tensor, sd: dict, key: str, dilation: int = 1, groups: int = 1) -> torch.Tensor:
    w = sd[key + ".weight"]
    return F.conv2d(
        t, w, sd[key + ".bias"], padding=(w.shape[-1] - 1) // 2 * dilation, dilation=dilation, groups=groups
    )


def ref_zero_dce_pp_curve(sd: dict, x: torch.Tensor) -> torch.Tensor:
    def layer(t: torch.Tensor, k: int) -> torch.Tensor:
        t = _conv(t, sd, f"e_conv{k}.depth_conv", groups=t.shape[1])
        return _conv(t, sd, f"e_conv{k}.point_conv")

    x1 = F.relu(layer(x, 1))
    x2 = F.relu(layer(x1, 2))
    x3 = F.relu(layer(x2, 3))
    x4 = F.relu(layer(x3, 4))
    x5 = F.relu(layer(torch.cat([x3, x4], 1), 5))
    x6 = F.relu(layer(torch.cat([x2, x5], 1), 6))
    return torch.tanh(layer(torch.cat([x1, x6], 1), 7))


def ref_zero_dce_pp(sd: dict, x: torch.Tensor, scale: int = 1) -> torch.Tensor:
    if scale > 1:
        r = ref_zero_dce_pp_curve(sd, F.interpolate(x, scale_factor=1 / scale, mode="bilinear"))
        r = F.interpolate(r, size=x.shape[-2:], mode="bilinear", align_corners=True)
    else:
        r = ref_zero_dce_pp_curve(sd, x)
    for _ in range(8):
        x = x + r * (x**2 - x)
    return x.clamp(0, 1)


def ref_sci(sd: dict, x: torch.Tensor) -> torch.Tensor:
    f = F.relu(_conv(x, sd, "enhance.in_conv.0"))
    g = _conv(f, sd, "enhance.conv.0")
    bn = "enhance.conv.1."
    g = F.batch_norm(
        g, sd[bn + "running_mean"], sd[bn + "running_var"], sd[bn + "weight"], sd[bn + "bias"], eps=1e-5
    )
    f = f + F.relu(g)
    i = (torch.sigmoid(_conv(f, sd, "enhance.out_conv.0")) + x).clamp(1e-4, 1)
    return (x / i).clamp(0, 1)


def _ref_cell(sd: dict, pre: str, t: torch.Tensor, ops: dict[str, tuple[int, bool]]) -> torch.Tensor:
    """ops: name -> (dilation, adds input) for the convs present; absent names are the identity."""

    def op(name: str, v: torch.Tensor) -> torch.Tensor:
        if name not in ops:
            return v
        dil, residual = ops[name]
        y = _conv(v, sd, f"{pre}{name}.op", dilation=dil)
        return y + v if residual else y

    act = lambda v: F.leaky_relu(v, 0.05)  # noqa: E731
    d1 = act(op("c1_d", t))
    r1 = act(op("c1_r", t) + t)
    d2 = act(op("c2_d", r1))
    r2 = act(op("c2_r", r1) + r1)
    d3 = act(op("c3_d", r2))
    r3 = act(op("c3_r", r2) + r2)
    r4 = act(op("c4", r3))
    return _conv(torch.cat([d1, d2, d3, r4], 1), sd, pre + "c5")


def ref_ruas(sd: dict, x: torch.Tensor, denoise: bool) -> torch.Tensor:
    illum = {"c1_r": (1, True), "c2_d": (2, True), "c2_r": (1, False), "c3_d": (1, False), "c4": (1, False)}
    noise = {"c1_d": (1, True), "c1_r": (1, True), "c2_d": (2, True), "c3_d": (1, True), "c3_r": (1, True)}

    def m(t: torch.Tensor) -> torch.Tensor:  # 2x2 max over (i..i+1, j..j+1), zero row/column appended
        tp = F.pad(t, (0, 1, 0, 1))
        return torch.maximum(
            torch.maximum(tp[..., :-1, :-1], tp[..., 1:, :-1]),
            torch.maximum(tp[..., :-1, 1:], tp[..., 1:, 1:]),
        )

    u = x
    for k in range(3):
        t = m(x) if k == 0 else m(u) - 0.5 * (u - x)
        i = torch.sigmoid(_ref_cell(sd, f"enhance_net.iems.{k}.cell.", t, illum)).clamp(0.001, 1)
        u = (x / i).clamp(0, 1)
    if not denoise:
        return u
    f = _conv(u, sd, "denoise_net.stem")
    for j in range(3):
        f = _ref_cell(sd, f"denoise_net.nrms.{j}.", f, noise)
    return u - _conv(f, sd, "denoise_net.activate.0")


REFERENCE_FORWARD: dict[str, Callable[[dict, torch.Tensor], torch.Tensor]] = {
    "zero-dce++": ref_zero_dce_pp,
    "sci": ref_sci,
    "ruas": lambda sd, x: ref_ruas(sd, x, denoise=False),
    "ruas-denoise": lambda sd, x: ref_ruas(sd, x, denoise=True),
}


# ------------------------------------------------------------------------------ structure, entries
def test_architecture_attributes():
    assert (zdpp_mod.ZeroDCEPP.arch, zdpp_mod.ZeroDCEPP.family, zdpp_mod.ZeroDCEPP.supports_fast) == (
        "zero-dce++",
        "curves",
        True,
    )
    assert (sci_mod.SCI.arch, sci_mod.SCI.family, sci_mod.SCI.supports_fast) == ("sci", "retinex", False)
    assert (ruas_mod.RUAS.arch, ruas_mod.RUAS.family, ruas_mod.RUAS.supports_fast) == (
        "ruas",
        "retinex",
        False,
    )
    net = zdpp_mod.ZeroDCEPP()
    assert net.native_scale == pytest.approx(1 / 12) and net.upsample_align_corners
    assert zdpp_mod.ZeroDCEPP(scale_factor=1).native_scale is None


def test_entries_are_complete_and_consistent():
    assert set(ENTRIES) == set(SHARED_FILES)
    for name, e in ENTRIES.items():
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256), name
        ext = Path(SHARED_FILES[name]).suffix
        assert e.file_name == f"{name}-{e.sha256[:8]}{ext}"
        assert SHARED_FILES[name] in e.aliases
        assert e.url is not None and e.url.startswith("https://github.com/")
        assert e.arch in BUILDERS
        for key in ("params", "source", "licence", "research_only", "training_data"):
            assert key in e.meta, (name, key)
        assert e.research_only == (not name.startswith("sci-"))
        # meta["params"] is what runs at test time, counted on the built network.
        net = BUILDERS[e.arch](**dict(e.arch_kwargs))
        assert net.test_time_parameters() == e.meta["params"], name
    assert ENTRIES["zero-dce++-official"].fast_scale == pytest.approx(1 / 12)
    assert dict(ENTRIES["ruas-lol"].arch_kwargs) == {"denoise": True}
    assert [
        ENTRIES[n].meta["params"] for n in ("zero-dce++-official", "sci-easy", "ruas-upe", "ruas-lol")
    ] == [
        10561,
        258,
        1161,
        3438,
    ]
    # No two entries answer to the same cache or alias name (a lookup would hit the wrong file).
    names = [n for e in ENTRIES.values() for n in (e.file_name, *e.aliases)]
    assert len(names) == len(set(names))


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_registered_sha256_is_the_shared_files(name):
    assert sha256_file(shared_path("weights", "peers", SHARED_FILES[name])) == ENTRIES[name].sha256


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_own_state_dict_round_trips_strict(variant):
    src = _random_net(variant, seed=1)
    arch, kwargs = VARIANTS[variant]
    dst = BUILDERS[arch](**kwargs)
    load_into(dst, src.state_dict(), "generated", type(dst).__name__)
    x = _image(20, 28)
    with torch.no_grad():
        assert torch.equal(_full(src, x), _full(dst.eval(), x))


def test_sci_shared_conv_is_one_module_and_untied_files_are_refused():
    net = _random_net("sci", seed=2)
    sd = net.state_dict()
    assert sd["enhance.conv.0.weight"].data_ptr() == sd["enhance.blocks.0.0.weight"].data_ptr()
    bad = {k: v.clone() for k, v in sd.items()}
    bad["enhance.blocks.0.0.weight"] += 0.1
    with pytest.raises(WeightsError, match=r"enhance\.(conv\.0|blocks\.0\.0)\.weight .*differ"):
        load_into(sci_mod.SCI(), bad, "tampered.pt", "SCI")


def test_missing_or_foreign_keys_are_refused():
    sd = _random_net("ruas").state_dict()
    sd.pop("denoise_net.activate.0.weight")
    with pytest.raises(WeightsError, match="missing 1 key"):
        load_into(ruas_mod.RUAS(), sd, "x.pt", "RUAS")
    with pytest.raises(WeightsError, match="unexpected"):
        load_into(sci_mod.SCI(), {**sci_mod.SCI().state_dict(), "extra": torch.zeros(1)}, "x.pt", "SCI")


# --------------------------------------------------------------------- the README's reference values
@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_values_on_dicm05(name):
    x = _dicm05()
    with torch.no_grad():
        if name == "zero-dce++-full-scale":
            net = _released("zero-dce++-official")
            y = _full(net, x)
        elif name == "zero-dce++-official":
            y = _released(name, crop=True).enhance(x)
            assert y.shape == (1, 3, 480, 636)  # the released crop to multiples of 12
        else:
            y = _released(name).enhance(x)
    means, pixels = REFERENCE[name]
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.tensor(means), atol=1e-5, rtol=0)
    if pixels is not None:
        h, w = y.shape[-2:]
        got = torch.stack([y[0, :, 0, 0], y[0, :, h // 2, w // 2], y[0, :, h - 1, w - 1]])
        torch.testing.assert_close(got, torch.tensor(pixels), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ reference forward vs the modules
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(("h", "w"), [(23, 31), (36, 48)])
def test_module_matches_reference_forward(variant, h, w):
    net = _random_net(variant, seed=3)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    x = _image(h, w, seed=4)
    with torch.no_grad():
        got = _full(net, x)
        want = REFERENCE_FORWARD[variant](sd, x)
    assert got.shape == want.shape == x.shape
    assert (got - x).abs().max() > 1e-3  # the network does something: not a vacuous comparison
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_zero_dce_pp_native_scale_matches_reference():
    net = _random_net("zero-dce++", seed=5)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    x = _image(60, 84, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(net.enhance(x), ref_zero_dce_pp(sd, x, scale=12), atol=1e-6, rtol=0)


def test_zero_dce_pp_crop_and_sizes():
    x = _image(50, 77)
    with torch.no_grad():
        assert zdpp_mod.ZeroDCEPP().eval().enhance(x).shape[-2:] == (50, 77)
        assert zdpp_mod.ZeroDCEPP(crop=True).eval().enhance(x).shape[-2:] == (48, 72)
        assert zdpp_mod.ZeroDCEPP(scale_factor=1).eval().enhance(x).shape[-2:] == (50, 77)
        with pytest.raises(SclleError, match="too small"):
            zdpp_mod.ZeroDCEPP().eval().enhance(_image(11, 40))


# ------------------------------------------------------------------------------------------ tiling
def _tiled(net: Enhancer, x: torch.Tensor, tile: int, halo: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            py0, px0 = max(0, y0 - halo), max(0, x0 - halo)
            py1, px1 = min(h, y1 + halo), min(w, x1 + halo)
            part = _full(net, x[..., py0:py1, px0:px1])
            out[..., y0:y1, x0:x1] = part[..., y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tiled_equals_untiled_with_receptive_radius_halo(variant):
    net = _random_net(variant, seed=7)
    radius = type(net).receptive_radius
    x = _image(70, 58, seed=8, hi=0.6)
    with torch.no_grad():
        whole = _full(net, x)
        tiled = _tiled(net, x, tile=16, halo=radius)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("variant", "radius"), [("zero-dce++", 7), ("sci", 3), ("ruas", 9), ("ruas-denoise", 17)]
)
def test_receptive_radius_is_exact(variant, radius):
    """Perturb one pixel (float64, so no change is lost to rounding): the outputs that change lie exactly
    within ``radius`` of it, and some lie at ``radius`` (the radius is neither short nor loose)."""
    net = _random_net(variant, seed=9).double()
    x = _image(61, 61, seed=10, lo=0.02, hi=0.3).double()
    bumped = x.clone()
    bumped[..., 30, 30] += 0.05
    with torch.no_grad():
        changed = (_full(net, bumped) != _full(net, x)).any(dim=1)[0]
    ys, xs = changed.nonzero(as_tuple=True)
    assert int(torch.maximum((ys - 30).abs(), (xs - 30).abs()).max()) == radius
    # RUAS's class radius is the lol variant's (with the denoiser), a safe halo for every variant.
    assert type(net).receptive_radius == (ruas_mod.RUAS.receptive_radius if variant == "ruas" else radius)


# ---------------------------------------------------------------------------------------- strength
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_strength_zero_is_identity_and_one_is_the_model(variant):
    net = _random_net(variant, seed=11)
    x = _image(24, 36, seed=12)
    with torch.no_grad():
        params = net(x)
        torch.testing.assert_close(net.apply(x, params, strength=0.0), x, atol=1e-6, rtol=0)
        assert torch.equal(net.apply(x, params, strength=1.0), net.apply(x, params))
        assert torch.equal(net.enhance(x, strength=1.0), net.enhance(x))
        if net.native_scale is None:
            assert torch.equal(net.enhance(x), net.apply(x, params))
        else:
            assert torch.equal(net.enhance(x), net.apply(x, net.params_at_scale(x, net.native_scale)))


@pytest.mark.parametrize("variant", ["sci", "ruas"])
def test_retinex_strength_is_monotone_per_pixel(variant):
    """Dividing by ``i ** s`` with ``i`` in (0, 1]: every pixel brightens as ``s`` grows."""
    net = _random_net(variant, seed=13)
    x = _image(24, 36, seed=14, hi=0.25)
    with torch.no_grad():
        params = net(x)
        outs = [net.apply(x, params, strength=s) for s in (0.0, 0.5, 1.0, 1.5)]
    for lo, hi in pairwise(outs):
        assert (hi >= lo - 1e-7).all() and hi.mean() > lo.mean()


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_strength_monotone_in_brightness_on_a_dark_photo(name):
    x = F.interpolate(_dicm05(), scale_factor=0.25, mode="area")  # 120x160, dark
    net = _released(name)
    with torch.no_grad():
        means = [float(net.enhance(x, strength=s).mean()) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert means[0] == pytest.approx(float(x.mean()), abs=1e-6)
    assert all(b > a for a, b in pairwise(means)), means


# ------------------------------------------------------------------------------------- weights hash
@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_wrong_hash_file_is_refused(name, tmp_path):
    entry = ENTRIES[name]
    fake = tmp_path / SHARED_FILES[name]
    torch.save(BUILDERS[entry.arch](**dict(entry.arch_kwargs)).state_dict(), fake)  # right keys, wrong bytes
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_file(entry, path=fake)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        BUILDERS[entry.arch](weights=entry, path=fake)


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_tampered_release_is_refused(name, tmp_path):
    entry = ENTRIES[name]
    copy = tmp_path / SHARED_FILES[name]
    shutil.copyfile(shared_path("weights", "peers", SHARED_FILES[name]), copy)
    assert resolve_file(entry, path=copy) == copy  # the intact copy resolves
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_file(entry, path=copy)

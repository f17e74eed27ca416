"""How an enhancer is run on an image: exact, fast (low-resolution params) or tiled, in a precision.

Every mode is ``params = net(x)`` followed by ``net.apply(x, params)`` (see :mod:`sclle.models.base`);
the modes differ only in where the params come from and how much is computed at once:

* **exact** (default) - the released arithmetic: the network at its native scale (full resolution for
  DCE-Net, SCI and RUAS; 1/12 for Zero-DCE++).
* **fast** (``fast_scale``) - the network sees a copy downscaled by ``fast_scale``; its params are
  upsampled and applied to the full-resolution image, so the output keeps the input's size and detail.
  Cost falls with ``scale**2``. Only for architectures whose params can be resampled (``supports_fast``).
* **tiled** - the same result computed tile by tile, each with a halo of at least the network's
  receptive-field radius, so it equals the untiled result while peak memory is bounded by the tile.
  Tiling is automatic above ``max_untiled_pixels`` (``tile=None``), forced by ``tile=N`` and off with
  ``tile=0``. In fast mode the tiles are those of the small copy the network sees.

``strength`` scales the effect (curve maps ``r -> s r``; Retinex ``x / i**s``): 0 is the identity,
1 the model's output. ``precision`` runs the *network* in bf16/fp16 (the apply step stays fp32).
The engine never changes the network it is given: it works on its own frozen copy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sclle.core.checks import check_image
from sclle.core.weights import WeightsEntry
from sclle.models.base import Enhancer, scale_curves

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Below this many pixels the whole image goes through the network at once (about 1.4 GB of
#: DCE-Net activations in fp32); above, tiles of ``AUTO_TILE`` px keep peak memory bounded. 384 px
#: (416 with the halo) was both faster and leaner than 512 at 4K on one core (a 32-channel activation of
#: a tile, 22 MB, then fits the last-level cache; BENCHMARKS.md, "Peak memory").
MAX_UNTILED_PIXELS = 1 << 20
AUTO_TILE = 384


@dataclass(frozen=True)
class EngineConfig:
    """How to run the enhancer; see the module docstring."""

    strength: float = 1.0
    #: None = exact (the model's native scale); else the downscale factor (0 < scale <= 1) of fast mode.
    fast_scale: float | None = None
    #: None = automatic (tiles above ``max_untiled_pixels``); 0 = never; N = tiles of N px.
    tile: int | None = None
    #: Halo of each tile in px; None = the network's receptive-field radius, rounded up to 8 (min 16).
    overlap: int | None = None
    max_untiled_pixels: int = MAX_UNTILED_PIXELS
    #: NHWC activations: oneDNN's direct convolutions are faster in that layout on CPU
    #: (measured in BENCHMARKS.md); output values are unchanged up to float rounding.
    channels_last: bool = True
    #: Precision of the network: fp32, bf16, fp16, or auto (see :func:`choose_precision`).
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not (isinstance(self.strength, (int, float)) and 0.0 <= self.strength <= 2.0):
            raise ValueError(f"strength must be in [0, 2], got {self.strength}")
        if self.fast_scale is not None and not (
            isinstance(self.fast_scale, (int, float)) and 0.0 < self.fast_scale <= 1.0
        ):
            raise ValueError(f"fast scale must be in (0, 1], got {self.fast_scale}")
        if self.tile is not None and self.tile != 0 and self.tile < 16:
            raise ValueError(f"tile must be at least 16 px (or 0 for no tiling), got {self.tile}")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        if self.max_untiled_pixels < 1:
            raise ValueError(f"max_untiled_pixels must be positive, got {self.max_untiled_pixels}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


def halo_for(net: Enhancer, overlap: int | None) -> int:
    """Tile halo: at least the receptive-field radius (an explicit smaller one would break exactness)."""
    radius = int(getattr(net, "receptive_radius", 7))
    if overlap is None:
        return max(16, 8 * math.ceil(radius / 8))
    if overlap < radius:
        raise ValueError(f"overlap must be >= the receptive-field radius ({radius} px), got {overlap}")
    return overlap


def _tiles(n: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]


def tiled_map(fn, x: torch.Tensor, tile: int, halo: int, out_channels: int | None = None) -> torch.Tensor:
    """``fn(x)`` computed tile by tile for a local ``fn`` (radius <= ``halo``); equals the untiled result.

    Each tile is computed on its window grown by ``halo`` on every side that is not the image border
    (where the padding of the convolutions is the image's own), then cropped back.
    """
    h, w = x.shape[-2:]
    out: torch.Tensor | None = None
    for y0, y1 in _tiles(h, tile):
        for x0, x1 in _tiles(w, tile):
            ya, yb = max(0, y0 - halo), min(h, y1 + halo)
            xa, xb = max(0, x0 - halo), min(w, x1 + halo)
            part = fn(x[..., ya:yb, xa:xb])[..., y0 - ya : y1 - ya, x0 - xa : x1 - xa]
            if out is None:
                c = part.shape[1] if out_channels is None else out_channels
                out = torch.empty((x.shape[0], c, h, w), dtype=part.dtype, device=x.device)
            out[..., y0:y1, x0:x1] = part
    assert out is not None
    return out


def tiled_enhance(
    net: Enhancer, x: torch.Tensor, tile: int, overlap: int | None = None, strength: float = 1.0
):
    """Exact enhancement tile by tile; equals ``net.apply(x, net(x))`` (kept for scripts and tests)."""
    halo = halo_for(net, overlap)
    return tiled_map(lambda t: net.apply(t, net(t), strength=strength), x, tile, halo)


def _lerp_index(
    n_in: int, n_out: int, align_corners: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of bilinear resizing along one axis, as ``F.interpolate`` computes them."""
    i = torch.arange(n_out, device=device, dtype=torch.float64)
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros_like(i)
    else:
        src = ((i + 0.5) * (n_in / n_out) - 0.5).clamp_(min=0)
    i0 = src.floor().long().clamp_(max=n_in - 1)
    i1 = (i0 + 1).clamp_(max=n_in - 1)
    return i0, i1, (src - i0).to(torch.float32)


#: Output rows per chunk of :func:`upsample_apply_curves`: its width-upsampled maps are made per chunk,
#: so their memory is bounded (24 maps x ~35 small rows x width; 27 MB at 8000 px wide) whatever the height.
APPLY_CHUNK_ROWS = 128


def upsample_apply_curves(
    x: torch.Tensor,
    small_curves: torch.Tensor,
    *,
    strength: float = 1.0,
    rows: int = 16,
    align_corners: bool = False,
    repeats: int = 1,
    out: torch.Tensor | None = None,
    out_rows: tuple[int, int] | None = None,
    small_height: int | None = None,
    small_offset: int = 0,
) -> torch.Tensor:
    """``apply_le_curves(x, upsample(small_curves))`` without materialising full-size curve maps.

    Fast mode's cost at full resolution is upsampling the maps and 8 curve steps. Separable bilinear:
    the width is upsampled once per chunk of :data:`APPLY_CHUNK_ROWS` output rows (only the small rows
    that chunk needs; rows interpolated onto themselves are copied exactly, so chunking changes no bit),
    then each output row is interpolated from two row *views* straight into one reused band buffer of
    ``rows`` rows, and the curve steps run in place on the output. The working set stays in cache and
    nothing full-size is allocated but the output (BENCHMARKS.md, fast mode). ``repeats`` applies each
    3-channel map that many times (Zero-DCE++ applies one map 8 times).

    Banded use (fast mode on a large image, where the small maps are made band by band): ``out`` holds a
    copy of ``x`` and is enhanced in place on ``out_rows`` only; ``small_curves`` then holds the small
    rows from ``small_offset`` on of a small image ``small_height`` rows high, and must cover every small
    row those output rows interpolate from.
    """
    _, _, h_out, w_out = x.shape
    ra, rb = out_rows if out_rows is not None else (0, h_out)
    h_in = small_height if small_height is not None else small_curves.shape[-2]
    small = small_curves.float()
    i0, i1, w = _lerp_index(h_in, h_out, align_corners, x.device)
    src = out
    n_maps = small.shape[1]
    if out is None and ((ra, rb) != (0, h_out) or n_maps == 0 or repeats == 0):  # rows no step writes keep x
        out = src = x.contiguous().clone()
    elif out is None:  # the first curve step reads x and writes out: no full-size copy of x first
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        src = x
    if n_maps == 0 or repeats == 0:  # no curve step: the (clamped) input
        out[:, :, ra:rb].clamp_(0.0, 1.0)
        return out
    on_cpu = x.device.type == "cpu"
    if on_cpu:
        y0, y1, wy = i0.tolist(), i1.tolist(), w.tolist()  # float32 values, exact as Python floats
        chunk = max(rows, APPLY_CHUNK_ROWS // rows * rows)
    else:  # a GPU wants few large kernels, not one launch per row: one chunk, one band, gathered rows
        rows = chunk = max(1, rb - ra)
    band = (
        torch.empty((x.shape[0], n_maps, rows, w_out), dtype=small.dtype, device=x.device) if on_cpu else None
    )
    tmp = torch.empty((x.shape[0], 3, rows, w_out), dtype=out.dtype, device=x.device)
    for ca in range(ra, rb, chunk):
        cb = min(ca + chunk, rb)
        lo, hi = int(i0[ca]), int(i1[cb - 1]) + 1  # the small rows this chunk reads (indices are sorted)
        part = small[:, :, lo - small_offset : hi - small_offset]
        b_, c_, h_, w_ = part.shape
        # the height is not resampled here, so a 1-D linear pass over (rows x maps) is the same bilinear
        # result, bit for bit, at ~0.6x the time of upsample_bilinear2d (BENCHMARKS.md, session 8)
        cw = F.interpolate(
            part.reshape(b_, c_ * h_, w_), size=w_out, mode="linear", align_corners=align_corners
        ).view(b_, c_, h_, w_out)
        for a in range(ca, cb, rows):
            b = min(a + rows, cb)
            if band is None:
                c = torch.lerp(cw[:, :, i0[a:b] - lo], cw[:, :, i1[a:b] - lo], w[a:b].view(1, 1, -1, 1))
            else:
                c = band[:, :, : b - a]
                for i in range(a, b):
                    torch.lerp(cw[:, :, y0[i] - lo], cw[:, :, y1[i] - lo], wy[i], out=c[:, :, i - a])
            if strength != 1.0:
                c.mul_(strength).clamp_(-1.0, 1.0)
            xs = out[:, :, a:b]
            xi = src[:, :, a:b]  # x's rows for the first step, then the output's own
            t = tmp[:, :, : b - a]
            for k in range(0, n_maps, 3):
                r = c[:, k : k + 3]
                for _ in range(repeats):
                    torch.mul(xi, xi, out=t)
                    t.sub_(xi)
                    torch.addcmul(xi, r, t, out=xs)  # x <- x + r (x^2 - x)
                    xi = xs
            xs.clamp_(0.0, 1.0)
    return out


def banded_upsample_apply(
    x: torch.Tensor,
    small: torch.Tensor,
    params_fn,
    *,
    band: int,
    halo: int,
    strength: float = 1.0,
    align_corners: bool = False,
    repeats: int = 1,
) -> torch.Tensor:
    """Fast mode for a large image: the small copy's curve maps are made ``band`` small rows at a time
    (plus ``halo`` rows of context each side, cropped) and applied to the output rows they serve, so
    only one band of maps is ever held (24 maps x band x width) instead of all of them.

    Equal to :func:`upsample_apply_curves` on ``params_fn(small)`` for a local ``params_fn`` (radius
    <= ``halo``): each band's rows are computed with their whole receptive field.
    """
    h_in, h_out = small.shape[-2], x.shape[-2]
    i0, _, _ = _lerp_index(h_in, h_out, align_corners, x.device)
    out = x.contiguous().clone()
    ra = 0
    for sa in range(0, h_in, band):
        sb = min(sa + band, h_in)
        # output rows whose first source row lies in [sa, sb); their second one is at most sb
        rb = h_out if sb == h_in else int(torch.searchsorted(i0, sb))
        if rb <= ra:
            continue
        need_hi = min(h_in, sb + 1)
        ctx_lo, ctx_hi = max(0, sa - halo), min(h_in, need_hi + halo)
        params = params_fn(small[..., ctx_lo:ctx_hi, :])[..., sa - ctx_lo : need_hi - ctx_lo, :]
        upsample_apply_curves(
            x, params, strength=strength, align_corners=align_corners, repeats=repeats,
            out=out, out_rows=(ra, rb), small_height=h_in, small_offset=sa,
        )  # fmt: skip
        ra = rb
    return out


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: the CPU computes bf16 dot products natively (else bf16 is emulated, slower)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


#: Minimum PSNR (dB) of the network in reduced precision against fp32 for ``auto`` to choose it
#: (8-bit quantisation alone is ~59 dB).
AUTO_PRECISION_MIN_PSNR = 60.0


def _calibration_image() -> torch.Tensor:
    """A deterministic 192x256 dark image with gradients, edges and colour (no file needed)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 192), torch.linspace(0, 1, 256), indexing="ij")
    base = torch.stack([xx * 0.3, yy * 0.25, (1 - xx) * 0.2]) + 0.05 * torch.rand(3, 192, 256, generator=g)
    base[:, 60:120, 80:160] += 0.4  # a brighter object with sharp edges
    return base.clamp(0, 1).unsqueeze(0)


def precision_psnr(net: Enhancer, dtype: torch.dtype, device: torch.device) -> float:
    """PSNR (dB) of the enhanced calibration image with the network in ``dtype`` against fp32."""
    x = _calibration_image().to(device)
    ref_net = copy.deepcopy(net).to(device).float().eval()
    low_net = copy.deepcopy(net).to(device).to(dtype).eval()
    with torch.inference_mode():
        ref = ref_net.apply(x, ref_net(x).float())
        low = ref_net.apply(x, low_net(x.to(dtype)).float())
    mse = float(((ref - low) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def choose_precision(net: Enhancer, device: torch.device, requested: str = "auto") -> str:
    """Resolve ``auto``: bf16 on CPUs with native bf16 and fp16 on CUDA, when the network's output stays
    within :data:`AUTO_PRECISION_MIN_PSNR` of fp32 on a calibration image; fp32 otherwise."""
    if requested != "auto":
        return requested
    if device.type == "cpu":
        candidate = "bf16" if cpu_has_native_bf16() else None
    elif device.type == "cuda":
        candidate = "fp16"
    else:
        candidate = None
    if candidate is None:
        return "fp32"
    dtype = torch.bfloat16 if candidate == "bf16" else torch.float16
    ok = precision_psnr(net, dtype, device) >= AUTO_PRECISION_MIN_PSNR
    return candidate if ok else "fp32"


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Engine:
    """A frozen copy of an enhancer plus how to run it. Build once, call many times."""

    def __init__(
        self,
        net: Enhancer,
        config: EngineConfig | None = None,
        device: str | torch.device = "cpu",
        *,
        entry: WeightsEntry | None = None,
    ) -> None:
        #: The registry entry the network came from (licence, recommended fast scale), if any.
        self.entry = entry
        self.config = config or EngineConfig()
        self.device = torch.device(device)
        cfg = self.config
        if cfg.fast_scale is not None and cfg.fast_scale < 1.0 and not getattr(net, "supports_fast", False):
            raise ValueError(
                f"fast mode is not available for {type(net).__name__} ({getattr(net, 'arch', '?')}): its "
                "enhancement needs the network at full resolution; use exact mode (tiling bounds memory)"
            )
        # Our own copy: the caller's network keeps its mode, gradients, device and memory format.
        net = copy.deepcopy(net).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.precision = choose_precision(net, self.device, cfg.precision)
        self.dtype = _DTYPES[self.precision]
        self.net = net.to(self.device)
        self.halo = halo_for(net, cfg.overlap)
        self._nhwc = cfg.channels_last and self.device.type == "cpu"
        self._run_net = self.net
        if self.dtype != torch.float32:
            self._run_net = copy.deepcopy(self.net).to(self.dtype)
        if self._nhwc:
            self._run_net = self._run_net.to(memory_format=torch.channels_last)

    @property
    def scale(self) -> float | None:
        """The scale the network sees (None = full resolution)."""
        s = self.config.fast_scale if self.config.fast_scale is not None else self.net.native_scale
        return None if s is None or s >= 1.0 else float(s)

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        """Params of the network (in its precision) for ``x``, returned in fp32."""
        if self.dtype != torch.float32:
            return self._run_net.infer(x.to(self.dtype)).float()
        return self._run_net.infer(x)

    def _tile_size(self, h: int, w: int) -> int | None:
        t = self.config.tile
        if t == 0:
            return None
        if t is not None:
            return t if (h > t or w > t) else None
        return AUTO_TILE if h * w > self.config.max_untiled_pixels else None

    def _enhance_full(self, x: torch.Tensor, strength: float) -> torch.Tensor:
        net = self.net
        tile = self._tile_size(*x.shape[-2:])

        def run(t: torch.Tensor) -> torch.Tensor:
            if (
                self._nhwc
            ):  # per tile: a full-size channels-last copy of a big image would cost its size again
                t = t.contiguous(memory_format=torch.channels_last)
            return net.apply(t, self._params(t), strength=strength)

        return run(x) if tile is None else tiled_map(run, x, tile, self.halo)

    def _enhance_scaled(self, x: torch.Tensor, scale: float, strength: float) -> torch.Tensor:
        net = self.net
        small = net.downscale(x, scale)
        if self._nhwc:
            small = small.contiguous(memory_format=torch.channels_last)
        tile = self._tile_size(*small.shape[-2:])

        def params_of(t: torch.Tensor) -> torch.Tensor:
            return self._params(t) if tile is None else tiled_map(self._params, t, tile, self.halo)

        if net.family != "curves":
            return net.apply(x, net.upsample(params_of(small), tuple(x.shape[-2:])), strength=strength)
        kw = dict(
            strength=strength, align_corners=net.upsample_align_corners,
            repeats=int(getattr(net, "curve_repeats", 1)),
        )  # fmt: skip
        if tile is not None and x.device.type == "cpu":  # large: maps made and applied band by band
            y = banded_upsample_apply(x, small, params_of, band=max(64, tile // 2), halo=self.halo, **kw)
        else:
            y = upsample_apply_curves(x, params_of(small), **kw)
        return net.finish(x, y)

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution params (strength applied for curve maps) for ``x``; for analysis and tests."""
        s = self.scale
        c = self.net.params_at_scale(x, s) if s is not None else self.net(x)
        strength: float | torch.Tensor = self.config.strength
        auto = self.net.image_strength(x)
        if auto is not None:
            strength = strength * auto.view(-1, 1, 1, 1)
        return scale_curves(c, strength) if self.net.family == "curves" else c

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "image")
        cfg = self.config
        if cfg.strength == 0.0:
            return x.clone()  # exactly the input, whatever its dtype or device
        src, src_device, src_dtype = x, x.device, x.dtype
        x = x.to(self.device, torch.float32)
        strength = cfg.strength
        auto = self.net.image_strength(x)  # the model's own per-image strength, from the whole image
        if auto is not None:
            if x.shape[0] > 1:  # one strength per image: run them one by one (each path takes a number)
                return torch.cat([self(src[i : i + 1]) for i in range(src.shape[0])])
            strength = cfg.strength * float(auto[0])
            if strength == 0.0:
                return src.clone()  # the model leaves this (bright) image alone
        s = self.scale
        y = self._enhance_full(x, strength) if s is None else self._enhance_scaled(x, s, strength)
        return y.to(src_device, src_dtype).contiguous()

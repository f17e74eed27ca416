"""How a DCE-Net is run on an image: exact, fast (low-resolution curves) or tiled.

Every mode is ``curves = net(x)`` followed by :func:`~sclle.models.dce.apply_curves`; they differ
only in where the curve maps come from:

* **exact** - the network sees the full image (the released arithmetic).
* **fast** - the network sees a copy downscaled by ``scale``; its curve maps are upsampled
  bilinearly and applied to the full-resolution image, so the output keeps the input's size and
  detail. Cost falls with ``scale**2``.
* **tiled** - exact curves computed tile by tile with a halo of at least the receptive-field
  radius (7 px), so the result equals the untiled one while peak memory is bounded by the tile.

``strength`` scales the curve maps (``r -> strength * r``): 0 is the identity, 1 the model's
output, values in between give a gentler curve of the same shape (a natural, lower exposure)
rather than a cross-fade, which would mix two tone curves and look flat. Values above 1 are
allowed up to 2; the maps are clipped to [-1, 1], where each curve step stays monotonic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sclle.models.dce import RECEPTIVE_FIELD_RADIUS, DCENet, apply_curves


@dataclass(frozen=True)
class EngineConfig:
    """How to run the enhancer; see the module docstring."""

    strength: float = 1.0
    #: None = exact; else the downscale factor (0 < scale < 1) at which curves are estimated.
    fast_scale: float | None = None
    #: None = whole image; else tile side in pixels (exact mode only).
    tile: int | None = None
    overlap: int = 16
    #: NHWC activations: oneDNN's direct convolutions are faster in that layout on CPU
    #: (measured in BENCHMARKS.md); output values are unchanged up to float rounding.
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 2.0:
            raise ValueError(f"strength must be in [0, 2], got {self.strength}")
        if self.fast_scale is not None and not 0.0 < self.fast_scale <= 1.0:
            raise ValueError(f"fast scale must be in (0, 1], got {self.fast_scale}")
        if self.tile is not None and self.tile < 16:
            raise ValueError(f"tile must be at least 16 px, got {self.tile}")
        if self.overlap < RECEPTIVE_FIELD_RADIUS:
            raise ValueError(
                f"overlap must be >= the receptive-field radius ({RECEPTIVE_FIELD_RADIUS}), got {self.overlap}"
            )


def check_image(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float tensor in [0, 1], got {x.dtype}")


def downscale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The copy fast mode's network sees (bilinear with antialiasing, size rounded)."""
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def fast_curves(net: DCENet, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Curve maps estimated on a ``scale``-downscaled copy, upsampled to ``x``'s size."""
    h, w = x.shape[-2:]
    if scale >= 1.0:
        return net(x)
    # Same resampling in training (scale-consistency loss) and inference, so the trained
    # consistency carries over exactly.
    curves = net(downscale(x, scale))
    return F.interpolate(curves, size=(h, w), mode="bilinear", align_corners=False)


def _lerp_rows(
    h_in: int, h_out: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and weights of bilinear resizing (``align_corners=False``, as F.interpolate)."""
    src = (torch.arange(h_out, device=device, dtype=torch.float64) + 0.5) * (h_in / h_out) - 0.5
    src = src.clamp_(min=0)
    y0 = src.floor().long().clamp_(max=h_in - 1)
    y1 = (y0 + 1).clamp_(max=h_in - 1)
    return y0, y1, (src - y0).to(torch.float32)


def upsample_apply_curves(
    x: torch.Tensor, small_curves: torch.Tensor, *, strength: float = 1.0, rows: int = 16
) -> torch.Tensor:
    """``apply_curves(x, upsample(small_curves))`` without materialising full-size curve maps.

    Fast mode's cost at full resolution is upsampling 24 maps and 8 curve steps; done a band of
    ``rows`` rows at a time (width upsampled once, height interpolated per band, steps in place), the
    working set stays in cache: 2-3x faster than the plain form, equal to it up to float rounding.
    """
    _, _, h_out, w_out = x.shape
    h_in = small_curves.shape[-2]
    cw = F.interpolate(small_curves, size=(h_in, w_out), mode="bilinear", align_corners=False).contiguous()
    y0, y1, wy = _lerp_rows(h_in, h_out, x.device)
    xc = x.contiguous()
    out = torch.empty_like(xc)
    for a in range(0, h_out, rows):
        b = min(a + rows, h_out)
        c = torch.lerp(cw[:, :, y0[a:b]], cw[:, :, y1[a:b]], wy[a:b].view(1, 1, -1, 1))
        if strength != 1.0:
            c.mul_(strength).clamp_(-1.0, 1.0)
        xs = xc[:, :, a:b].clone()
        t = torch.empty_like(xs)
        for k in range(0, c.shape[1], 3):
            torch.mul(xs, xs, out=t)
            t.sub_(xs)
            xs.addcmul_(c[:, k : k + 3], t)  # x <- x + r (x^2 - x)
        out[:, :, a:b] = xs.clamp_(0.0, 1.0)
    return out


def _tiles(n: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]


def tiled_enhance(
    net: DCENet, x: torch.Tensor, tile: int, overlap: int, strength: float = 1.0
) -> torch.Tensor:
    """Exact enhancement computed tile by tile; equals ``apply_curves(x, net(x))``.

    Each tile is run with a halo of ``overlap`` >= 7 pixels; the network's zero padding only
    matters at the image border, where the tile's border coincides with the image's.
    """
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for y0, y1 in _tiles(h, tile):
        for x0, x1 in _tiles(w, tile):
            ya, yb = max(0, y0 - overlap), min(h, y1 + overlap)
            xa, xb = max(0, x0 - overlap), min(w, x1 + overlap)
            curves = net(x[..., ya:yb, xa:xb])[..., y0 - ya : y1 - ya, x0 - xa : x1 - xa]
            if strength != 1.0:
                curves = (curves * strength).clamp_(-1.0, 1.0)
            out[..., y0:y1, x0:x1] = apply_curves(x[..., y0:y1, x0:x1], curves)
    return out


class Engine:
    """A built, frozen enhancer plus how to run it. Build once, call many times."""

    def __init__(self, net: DCENet, config: EngineConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or EngineConfig()
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self._nhwc = self.config.channels_last and self.device.type == "cpu"
        if self._nhwc:
            self.net = self.net.to(memory_format=torch.channels_last)

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution curve maps (strength applied) for ``x``."""
        cfg = self.config
        c = fast_curves(self.net, x, cfg.fast_scale) if cfg.fast_scale is not None else self.net(x)
        if cfg.strength != 1.0:
            c = (c * cfg.strength).clamp(-1.0, 1.0)
        return c

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        cfg = self.config
        if cfg.strength == 0.0:
            return x.clone()  # exactly the input, whatever its dtype or device
        src_device, src_dtype = x.device, x.dtype
        x = x.to(self.device, torch.float32).clamp(0.0, 1.0)
        if self._nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        if cfg.fast_scale is not None and cfg.fast_scale < 1.0:
            small = self.net(downscale(x, cfg.fast_scale))
            y = upsample_apply_curves(x, small, strength=cfg.strength)
        elif cfg.tile is not None:
            y = tiled_enhance(self.net, x, cfg.tile, cfg.overlap, cfg.strength)
        else:
            y = apply_curves(x, self.curves(x))
        return y.to(src_device, src_dtype).contiguous()


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; asking for an absent device is an error."""
    from sclle.errors import SclleError

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SclleError("--device cuda asked for, but no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SclleError("--device mps asked for, but MPS is not available")
    if device not in {"cpu", "cuda", "mps"} and not device.startswith("cuda:"):
        raise SclleError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    return torch.device(device)

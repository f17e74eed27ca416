"""Arrays, Pillow images and tensors in and out, and the :class:`Image` that remembers the source layout.

Everything inside ``sclle`` works on float32 RGB in [0, 1] (``HxWx3`` here, ``(B,3,H,W)`` as tensors);
this module converts from and back to what the user gave: gray stays gray (the mean of the 3 enhanced
channels, exact when they are equal), alpha is re-attached bit-exactly, 16-bit stays 16-bit.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms

from sclle.imageio.formats import canonical_format, with_exif_header

if TYPE_CHECKING:
    import torch

__all__ = ["Image", "from_array", "from_pil", "from_tensor", "to_array", "to_pil", "to_tensor"]

_FLOAT_SLACK = 1e-6  # float sources may overshoot [0, 1] by rounding error (e.g. 1.0000001); clipped


@dataclass(eq=False)  # numpy fields: == would be ambiguous
class Image:
    """A decoded image plus what is needed to write the enhanced result back in the same layout.

    ``rgb`` is what gets enhanced: float32 ``HxWx3`` in [0, 1], grayscale replicated to 3 channels,
    EXIF orientation already applied. ``alpha`` is the original alpha channel (original dtype), never
    touched. ``source_dtype``/``keepdims`` only matter for :func:`from_array` sources: the dtype given
    back by :func:`to_array` (float sources stay float) and whether a gray source had a channel axis.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    mode: Literal["gray", "rgb"] = "rgb"
    bit_depth: Literal[8, 16] = 8
    format: str = ""
    exif: bytes | None = None
    icc_profile: bytes | None = None
    path: Path | None = None
    source_dtype: np.dtype | None = None
    keepdims: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow reports it."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def to_float(a: np.ndarray) -> np.ndarray:
    """uint8/uint16/float array -> float32 in [0, 1]."""
    out = a.astype(np.float32)
    if a.dtype == np.uint8:
        out /= np.float32(255.0)
    elif a.dtype == np.uint16:
        out /= np.float32(65535.0)
    return out


def from_float(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float in [0, 1] -> ``dtype`` (uint8: round(x*255), uint16: round(x*65535), float: clipped)."""
    if dtype not in (np.uint8, np.uint16):
        return np.clip(x, 0.0, 1.0).astype(dtype)
    scale = 255.0 if dtype == np.uint8 else 65535.0
    # in-place steps on one float32 buffer: ~10x faster than chained temporaries on 12 MP images
    y = np.multiply(x, np.float32(scale), dtype=np.float32)
    np.maximum(y, 0.0, out=y)
    np.minimum(y, scale, out=y)
    np.rint(y, out=y)
    return y.astype(dtype)


def quantize_tensor(t: torch.Tensor) -> np.ndarray:
    """Float tensor (1, 3, H, W) or (3, H, W) -> HxWx3 uint8, equal to ``from_float(from_tensor(t), uint8)``.

    Why: the engine's output is channels-first float; transposing it to a float HxWx3 array and then
    quantising touches 24 bytes per pixel twice (~17 ms/Mpx on one core). OpenCV scales the three
    planes straight to uint8 (rounding half to even and saturating, as ``np.rint`` then clipping) and
    interleaves the bytes: ~1-3 ms/Mpx, no float copy at all.
    """
    import torch

    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
    a = t.detach().to("cpu", torch.float32).contiguous().numpy()
    _, h, w = a.shape
    planes = cv2.multiply(a.reshape(3 * h, w), 255.0, dtype=cv2.CV_8U)
    return cv2.merge([planes[:h], planes[h : 2 * h], planes[2 * h :]])


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(to_float(gray)[..., None], 3, axis=2)


def decode_pil(im: PILImage.Image) -> tuple[np.ndarray, np.ndarray | None, str, int, bytes | None]:
    """Pillow image -> (color HxW or HxWx3 uint8/uint16, alpha, mode, bit depth, icc profile to keep).

    Raises ValueError for modes that cannot be represented (callers turn it into a user-facing error).
    """
    icc = im.info.get("icc_profile") or None
    m = im.mode
    if m == "CMYK":
        converted = None
        if icc:  # a real colour conversion when the file says how
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                srgb = ImageCms.createProfile("sRGB")
                converted = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
            except Exception:
                converted = None
        im = converted if converted is not None else im.convert("RGB")
        icc = None  # the CMYK profile does not describe the RGB pixels (now sRGB or naive)
        m = "RGB"
    elif m == "P":
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif m in ("PA", "RGBa"):
        im = im.convert("RGBA")
    elif m == "La":
        im = im.convert("LA")
    elif m in ("1",):
        im = im.convert("L")
    elif m in ("RGBX", "YCbCr", "HSV", "LAB"):
        im = im.convert("RGB")
    elif m in ("L", "RGB") and "transparency" in im.info:  # PNG tRNS: one colour is transparent
        im = im.convert(m + "A")
    m = im.mode
    if m.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), None, "gray", 16, icc
    if m == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError("32-bit integer images are not supported (only 8- and 16-bit)")
        return a.astype(np.uint16), None, "gray", 16, icc
    if m in ("L", "LA", "RGB", "RGBA"):
        a = np.asarray(im)
        if m == "L":
            return a, None, "gray", 8, icc
        if m == "LA":
            return a[..., 0], a[..., 1].copy(), "gray", 8, icc
        if m == "RGB":
            return a, None, "rgb", 8, icc
        return a[..., :3], a[..., 3].copy(), "rgb", 8, icc
    raise ValueError(f"image mode {m!r} is not supported (only 8/16-bit gray, RGB, RGBA, palette)")


def decoded_image(
    color: np.ndarray,
    alpha: np.ndarray | None,
    mode: str,
    depth: int,
    *,
    format: str,
    exif: bytes | None,
    icc_profile: bytes | None,
    path: Path | None = None,
) -> Image:
    """The :class:`Image` of decoded samples (gray replicated to RGB, floats in [0, 1]): files and Pillow
    images become the same record whichever decoder read them."""
    rgb = gray_to_rgb(color) if mode == "gray" else to_float(color)
    return Image(
        rgb=rgb,
        alpha=alpha,
        mode=mode,  # type: ignore[arg-type]
        bit_depth=depth,  # type: ignore[arg-type]
        format=format,
        exif=exif,
        icc_profile=icc_profile,
        path=path,
    )


def from_array(arr: np.ndarray) -> Image:
    """Wrap a numpy image (``HxW`` or ``HxWxC``, C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

    uint8 and uint16 are scaled by 255 / 65535; float arrays must already be in [0, 1] (ValueError
    otherwise; an overshoot within 1e-6 from rounding is clipped) and :func:`to_array` gives float back.
    No EXIF orientation applies to arrays.
    """
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(arr).__name__}")
    a = arr
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] > 4:
        raise ValueError(f"expected HxWxC (channels last), got shape {a.shape}; transpose channels-first")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 2, 3, 4))):
        raise ValueError(f"expected an HxW or HxWxC array with C in 1..4, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image array is empty (shape {a.shape})")
    if a.dtype == np.uint8:
        depth = 8
    elif a.dtype == np.uint16:
        depth = 16
    elif np.issubdtype(a.dtype, np.floating):
        depth = 8
        if not np.isfinite(a).all():
            raise ValueError("float image contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -_FLOAT_SLACK or hi > 1.0 + _FLOAT_SLACK:
            raise ValueError(f"float images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    else:
        raise ValueError(f"unsupported array dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
    channels = 1 if a.ndim == 2 else a.shape[2]
    keepdims = a.ndim == 3
    alpha = a[..., -1].copy() if channels in (2, 4) else None
    if channels <= 2:
        gray = a if a.ndim == 2 else a[..., 0]
        rgb, mode = gray_to_rgb(gray), "gray"
    else:
        rgb, mode = to_float(a[..., :3]), "rgb"
    if a.dtype.kind == "f":
        np.clip(rgb, 0.0, 1.0, out=rgb)
        alpha = None if alpha is None else np.clip(alpha, 0, 1).astype(a.dtype)
    return Image(
        rgb=np.ascontiguousarray(rgb),
        alpha=alpha,
        mode=mode,  # type: ignore[arg-type]
        bit_depth=depth,  # type: ignore[arg-type]
        format="",
        source_dtype=a.dtype,
        keepdims=keepdims,
    )


def from_pil(img: PILImage.Image) -> Image:
    """Wrap a Pillow image (modes L, LA, RGB, RGBA, P, I;16, ...); keeps its EXIF/ICC from ``img.info``.

    EXIF orientation is *not* applied (the pixels come back in the layout given; use
    ``PIL.ImageOps.exif_transpose`` first if wanted). Palette images come back as RGB(A).
    """
    if not isinstance(img, PILImage.Image):
        raise ValueError(f"expected a PIL.Image.Image, got {type(img).__name__}")
    if img.width == 0 or img.height == 0:
        raise ValueError(f"image has zero size ({img.width}x{img.height})")
    color, alpha, mode, depth, icc = decode_pil(img)
    exif = img.info.get("exif") or None
    return decoded_image(
        color,
        alpha,
        mode,
        depth,
        format=canonical_format(img.format or "") or "",
        exif=with_exif_header(exif) if isinstance(exif, bytes) else None,
        icc_profile=icc,
    )


def _check_rgb(image: Image, rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"expected an HxWx3 float array in [0, 1], got {type(rgb).__name__} shaped {shape}")
    if not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"expected a float array in [0, 1], got dtype {rgb.dtype}")
    if image.alpha is not None and rgb.shape[:2] != image.alpha.shape[:2]:
        raise ValueError(f"rgb is {rgb.shape[:2]} but the image's alpha is {image.alpha.shape[:2]}")
    if not np.isfinite(rgb).all():
        raise ValueError("rgb contains NaN or infinite values")
    return rgb


def _convert_alpha(alpha: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return alpha if alpha.dtype == dtype else from_float(to_float(alpha), dtype)


def _default_dtype(image: Image) -> np.dtype:
    if image.source_dtype is not None:
        return np.dtype(image.source_dtype)
    return np.dtype(np.uint16 if image.bit_depth == 16 else np.uint8)


def _is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")  # never imports torch: a caller with a tensor has already done so
    return torch is not None and isinstance(x, torch.Tensor)


def _check_tensor(image: Image, t: torch.Tensor) -> None:
    shape = tuple(t.shape)
    hw = shape[-2:]
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[0] != 1) or shape[-3] != 3:
        raise ValueError(f"expected a tensor of shape (1, 3, H, W) or (3, H, W), got {shape}")
    if not t.is_floating_point():
        raise ValueError(f"expected a float tensor in [0, 1], got dtype {t.dtype}")
    if image.alpha is not None and hw != image.alpha.shape[:2]:
        raise ValueError(f"rgb is {hw} but the image's alpha is {image.alpha.shape[:2]}")
    lo, hi = t.aminmax()  # NaN and infinities reach the extremes: no full-size mask
    if not (bool(lo.isfinite()) and bool(hi.isfinite())):
        raise ValueError("rgb contains NaN or infinite values")


def compose(
    image: Image, rgb: np.ndarray | torch.Tensor, dtype: np.dtype, keep_alpha: bool = True
) -> np.ndarray:
    """Enhanced float rgb -> the source layout in ``dtype`` (gray: HxW, +alpha: HxWx2, RGB(A): HxWx3/4).

    ``rgb`` is an HxWx3 array or the engine's (1, 3, H, W) tensor; an RGB source written as uint8 (the
    common case) is then quantised on the tensor (:func:`quantize_tensor`), the same values either way.
    """
    if _is_tensor(rgb):
        _check_tensor(image, rgb)
    if _is_tensor(rgb) and image.mode == "rgb" and np.dtype(dtype) == np.uint8:
        out = quantize_tensor(rgb)
    else:
        rgb = _check_rgb(image, from_tensor(rgb) if _is_tensor(rgb) else rgb)
        color = rgb.mean(axis=2) if image.mode == "gray" else rgb
        out = from_float(color, dtype)
    if keep_alpha and image.alpha is not None:
        a = _convert_alpha(image.alpha, dtype)
        out = np.dstack([out, a]) if out.ndim == 3 else np.stack([out, a], axis=2)
    return out


def to_array(image: Image, rgb: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Enhanced ``rgb`` (HxWx3 float in [0,1], clipped) back to the layout of ``image``'s source.

    Gray sources give one channel (the mean of the 3 enhanced channels), alpha is re-attached unchanged
    (rescaled only if a different ``dtype`` is asked for), uint16 = round(x*65535), uint8 = round(x*255).
    ``dtype`` defaults to the source's (uint8/uint16 by bit depth, or the float dtype of an array source).
    """
    dt = _default_dtype(image) if dtype is None else np.dtype(dtype)
    if dt not in (np.uint8, np.uint16) and not np.issubdtype(dt, np.floating):
        raise ValueError(f"dtype must be uint8, uint16 or a float type, got {dt}")
    out = compose(image, rgb, dt)
    if image.mode == "gray" and image.keepdims and out.ndim == 2:
        out = out[..., None]
    return out


def to_pil(image: Image, rgb: np.ndarray) -> PILImage.Image:
    """Enhanced ``rgb`` back to a Pillow image in the source's mode where Pillow has one.

    L/LA/RGB/RGBA stay as they were, 16-bit gray gives ``I;16``; Pillow has no 16-bit colour or 16-bit
    gray+alpha mode, so those (and float array sources) come back as 8-bit. ICC/EXIF go into ``info``.
    """
    dt = np.uint16 if (image.bit_depth == 16 and image.mode == "gray" and image.alpha is None) else np.uint8
    out = PILImage.fromarray(compose(image, rgb, np.dtype(dt)))
    if image.icc_profile:
        out.info["icc_profile"] = image.icc_profile
    if image.exif:
        out.info["exif"] = image.exif
    return out


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 float array -> float32 tensor (1, 3, H, W), the layout every model in sclle takes."""
    import torch

    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {getattr(rgb, 'shape', None)}")
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]


def from_tensor(t: torch.Tensor) -> np.ndarray:
    """Tensor (1, 3, H, W) or (3, H, W) -> float32 HxWx3 array (no clipping; :func:`to_array` clips)."""
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image (1, 3, H, W), got batch shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
    import torch

    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0))

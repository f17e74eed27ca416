"""Image files and arrays in, image files and arrays out.

Everything inside ``sclle`` works on float32 RGB in [0, 1] (``HxWx3`` here, ``(B,3,H,W)`` as tensors).
This module is the only place that converts from and back to what the user gave us, so that an enhanced
image comes back in the same *layout* as its source:

* grayscale stays grayscale (it is replicated to 3 channels for the model; on the way back the mean of
  the 3 channels is used, which is exact when the channels are equal),
* the alpha channel is never enhanced: the original one is re-attached bit-exactly,
* 16-bit stays 16-bit where the output format can hold it (PNG, TIFF),
* EXIF and ICC profiles are carried over where the output format can hold them (JPEG, PNG, WebP,
  8-bit TIFF; 16-bit colour PNG keeps them too); EXIF orientation is applied to the pixels on reading and
  the tag is reset to 1, so viewers do not rotate the result a second time.

Pillow does most of the work. OpenCV decodes/encodes what Pillow cannot: 16-bit colour (and 16-bit
gray+alpha) PNG and TIFF, which Pillow would silently cut to 8 bits.

Files are written atomically (temporary file in the target folder, then :func:`os.replace`), existing
files are kept unless ``overwrite=True``, and the input file itself is never overwritten.
"""

from __future__ import annotations

import glob
import io
import os
import secrets
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
from PIL import ExifTags, ImageCms, UnidentifiedImageError
from PIL import Image as PILImage

from sclle.errors import ImageReadError, ImageWriteError

if TYPE_CHECKING:
    import torch

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ConversionWarning",
    "Image",
    "conversion_notes",
    "find_images",
    "from_array",
    "from_pil",
    "from_tensor",
    "is_supported",
    "output_path",
    "read_image",
    "side_by_side",
    "to_array",
    "to_pil",
    "to_tensor",
    "write_image",
]

_EXT_TO_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
#: File extensions read and written (lower case, with the dot; matching is case-insensitive).
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_EXT_TO_FORMAT)
_FORMAT_TO_EXT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG"}  # MPO: multi-picture JPEG from cameras
_SUPPORTED_TEXT = ", ".join(SUPPORTED_EXTENSIONS)
_FORMATS_TEXT = ", ".join(_FORMAT_TO_EXT)

_DEPTH16_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
_METADATA_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_FLOAT_SLACK = 1e-6  # float sources may overshoot [0, 1] by rounding error (e.g. 1.0000001); clipped


class ConversionWarning(UserWarning):
    """Something of the source could not be kept in the chosen output format (bit depth, alpha, metadata)."""


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


# --------------------------------------------------------------------------------------------- helpers


def is_supported(path: str | Path) -> bool:
    """True when the file extension is one of :data:`SUPPORTED_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in _EXT_TO_FORMAT


def _unsupported_type(p: Path) -> str:
    return f"unsupported file type {p.suffix or '(no extension)'!r} (supported: {_SUPPORTED_TEXT})"


def _canonical_format(fmt: str) -> str | None:
    f = fmt.strip().upper().lstrip(".")
    f = _FORMAT_ALIASES.get(f, f)
    return f if f in _FORMAT_TO_EXT else None


def _to_float(a: np.ndarray) -> np.ndarray:
    """uint8/uint16/float array -> float32 in [0, 1]."""
    out = a.astype(np.float32)
    if a.dtype == np.uint8:
        out /= np.float32(255.0)
    elif a.dtype == np.uint16:
        out /= np.float32(65535.0)
    return out


def _from_float(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
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


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(_to_float(gray)[..., None], 3, axis=2)


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``HxW[xC]`` array so that it displays upright."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _patch_orientation(exif: bytes) -> bytes | None:
    """Set the IFD0 orientation tag to 1 in place, leaving every other byte (maker notes!) untouched.

    Rewriting EXIF with Pillow would move data around and can break maker notes that use absolute
    offsets, so the 2-byte value is patched directly. Returns None when the tag is not found.
    """
    start = len(_EXIF_HEADER) if exif.startswith(_EXIF_HEADER) else 0
    tiff = exif[start:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    try:
        magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
        if magic != 42:
            return None
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == _ORIENTATION and typ == 3 and n == 1:  # SHORT, stored in the value field
                out = bytearray(exif)
                struct.pack_into(order + "H", out, start + entry + 8, 1)
                return bytes(out)
    except struct.error:
        return None
    return None


def _kept_exif(im: PILImage.Image, fmt: str, orientation: int) -> bytes | None:
    """The EXIF block to carry to the output, with orientation reset to 1 (``Exif\\0\\0`` prefixed)."""
    if fmt == "TIFF":
        # In a TIFF the "EXIF" is the image's own IFD (strip offsets, sizes...): keep only the descriptive
        # tags and the Exif/GPS sub-IFDs; orientation is simply left out (default 1).
        src = im.getexif()
        kept = PILImage.Exif()
        for tag in (270, 271, 272, 305, 306, 315, 33432):  # description, make, model, software, date...
            if tag in src:
                kept[tag] = src[tag]
        for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            sub = src.get_ifd(ifd)
            if sub:
                kept[ifd] = dict(sub)
        return kept.tobytes() if len(kept) else None
    raw = im.info.get("exif")
    if not raw:
        return None
    if isinstance(raw, PILImage.Exif):  # pragma: no cover - defensive, Pillow stores bytes
        raw = raw.tobytes()
    if not raw.startswith(_EXIF_HEADER):
        raw = _EXIF_HEADER + raw
    if orientation == 1:
        return raw
    patched = _patch_orientation(raw)
    if patched is not None:
        return patched
    exif = im.getexif()  # orientation came from somewhere unusual: let Pillow rewrite the block
    exif[_ORIENTATION] = 1
    return exif.tobytes()


def _orientation(im: PILImage.Image) -> int:
    try:
        o = int(im.getexif().get(_ORIENTATION, 1))
    except Exception:  # broken EXIF must not make an otherwise fine image unreadable
        return 1
    return o if 1 <= o <= 8 else 1


def _decode_pil(im: PILImage.Image) -> tuple[np.ndarray, np.ndarray | None, str, int, bytes | None]:
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


def _needs_opencv(path: Path, im: PILImage.Image, fmt: str) -> tuple[bool, bool]:
    """(16-bit colour or gray+alpha file that Pillow would cut to 8 bits?, is it gray+alpha?)."""
    if fmt == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        # IHDR directly follows the 8-byte signature: bit depth at byte 24, colour type at byte 25
        if len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6):
            return True, head[25] == 4
    elif fmt == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        samples = int(im.tag_v2.get(277, 1))
        if 16 in bits and samples >= 2:
            return True, samples == 2
    return False, False


def _decode_opencv(path: Path, gray: bool) -> tuple[np.ndarray, np.ndarray | None, str]:
    data = np.fromfile(path, dtype=np.uint8)  # imdecode, unlike imread, copes with non-ASCII paths
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED: keep 16 bits and alpha, no auto-rotation
    if a is None or a.size == 0:
        raise ImageReadError("corrupt or truncated image (OpenCV could not decode it)", path)
    if a.dtype != np.uint16:
        raise ImageReadError(f"unexpected sample type {a.dtype} (expected 16-bit)", path)
    if a.ndim == 2:
        return a, None, "gray"
    alpha = a[..., -1].copy() if a.shape[2] in (2, 4) else None
    if gray or a.shape[2] == 2:
        return np.ascontiguousarray(a[..., 0]), alpha, "gray"
    return np.ascontiguousarray(a[..., 2::-1]), alpha, "rgb"


# --------------------------------------------------------------------------------------------- reading


def read_image(path: str | Path) -> Image:
    """Read an image file into an :class:`Image` (float32 RGB in [0,1] + what is needed to write it back).

    EXIF orientation is applied to the pixels. 8- and 16-bit gray, gray+alpha, RGB, RGBA and palette
    images are read; anything else, or a file that is missing, corrupt or truncated, raises
    :class:`~sclle.errors.ImageReadError` with a one-line message naming the file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ImageReadError("no such file", p)
    if p.is_dir():
        raise ImageReadError("is a folder, not an image file", p)
    if not is_supported(p):
        raise ImageReadError(_unsupported_type(p), p)
    try:
        if p.stat().st_size == 0:
            raise ImageReadError("file is empty (0 bytes)", p)
        with PILImage.open(p) as im:
            fmt = _canonical_format(im.format or "")
            if fmt is None:
                raise ImageReadError(f"unsupported image format {im.format} (supported: {_FORMATS_TEXT})", p)
            if im.width == 0 or im.height == 0:
                raise ImageReadError(f"image has zero size ({im.width}x{im.height})", p)
            im.load()  # force the full decode: truncated data fails here, not later
            orientation = _orientation(im)
            exif = _kept_exif(im, fmt, orientation)
            use_cv, gray_alpha = _needs_opencv(p, im, fmt)
            if use_cv:
                color, alpha, mode = _decode_opencv(p, gray_alpha)
                depth, icc = 16, im.info.get("icc_profile") or None
            else:
                color, alpha, mode, depth, icc = _decode_pil(im)
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError("cannot read: permission denied", p) from None
    except UnidentifiedImageError:
        raise ImageReadError("not a readable image (corrupt file or wrong extension)", p) from None
    except PILImage.DecompressionBombError as e:
        raise ImageReadError(f"image too large: {e}", p) from None
    except ValueError as e:
        raise ImageReadError(str(e), p) from None
    except MemoryError:
        raise
    except Exception as e:  # OSError("image file is truncated"), SyntaxError("broken PNG file"), zlib...
        raise ImageReadError(f"corrupt or truncated image ({type(e).__name__}: {e})", p) from None

    color = _apply_orientation(color, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    rgb = _gray_to_rgb(color) if mode == "gray" else _to_float(color)
    return Image(
        rgb=rgb,
        alpha=alpha,
        mode=mode,  # type: ignore[arg-type]
        bit_depth=depth,  # type: ignore[arg-type]
        format=fmt,
        exif=exif,
        icc_profile=icc,
        path=p,
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
        rgb, mode = _gray_to_rgb(gray), "gray"
    else:
        rgb, mode = _to_float(a[..., :3]), "rgb"
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
    color, alpha, mode, depth, icc = _decode_pil(img)
    exif = img.info.get("exif") or None
    if isinstance(exif, bytes) and not exif.startswith(_EXIF_HEADER):
        exif = _EXIF_HEADER + exif
    rgb = _gray_to_rgb(color) if mode == "gray" else _to_float(color)
    return Image(
        rgb=rgb,
        alpha=alpha,
        mode=mode,  # type: ignore[arg-type]
        bit_depth=depth,  # type: ignore[arg-type]
        format=_canonical_format(img.format or "") or "",
        exif=exif if isinstance(exif, bytes) else None,
        icc_profile=icc,
    )


# --------------------------------------------------------------------------------------------- back


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
    return alpha if alpha.dtype == dtype else _from_float(_to_float(alpha), dtype)


def _default_dtype(image: Image) -> np.dtype:
    if image.source_dtype is not None:
        return np.dtype(image.source_dtype)
    return np.dtype(np.uint16 if image.bit_depth == 16 else np.uint8)


def _compose(image: Image, rgb: np.ndarray, dtype: np.dtype, keep_alpha: bool = True) -> np.ndarray:
    """Enhanced float rgb -> the source layout in ``dtype`` (gray: HxW, +alpha: HxWx2, RGB(A): HxWx3/4)."""
    rgb = _check_rgb(image, rgb)
    color = rgb.mean(axis=2) if image.mode == "gray" else rgb
    out = _from_float(color, dtype)
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
    out = _compose(image, rgb, dt)
    if image.mode == "gray" and image.keepdims and out.ndim == 2:
        out = out[..., None]
    return out


def to_pil(image: Image, rgb: np.ndarray) -> PILImage.Image:
    """Enhanced ``rgb`` back to a Pillow image in the source's mode where Pillow has one.

    L/LA/RGB/RGBA stay as they were, 16-bit gray gives ``I;16``; Pillow has no 16-bit colour or 16-bit
    gray+alpha mode, so those (and float array sources) come back as 8-bit. ICC/EXIF go into ``info``.
    """
    dt = np.uint16 if (image.bit_depth == 16 and image.mode == "gray" and image.alpha is None) else np.uint8
    out = PILImage.fromarray(_compose(image, rgb, np.dtype(dt)))
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


# --------------------------------------------------------------------------------------------- writing


def conversion_notes(image: Image, format: str) -> list[str]:
    """What will not survive writing ``image`` as ``format`` (one short sentence each; empty if nothing)."""
    fmt = _canonical_format(format)
    if fmt is None:
        raise ValueError(f"unknown format {format!r} (supported: {_FORMATS_TEXT})")
    notes = []
    if image.bit_depth == 16 and fmt not in _DEPTH16_FORMATS:
        notes.append(f"16-bit image written as 8-bit ({fmt} has no 16-bit mode; PNG and TIFF keep 16 bits)")
    if image.alpha is not None and fmt not in _ALPHA_FORMATS:
        notes.append(f"alpha channel dropped ({fmt} output; use PNG, TIFF or WEBP to keep it)")
    sixteen_cv = image.bit_depth == 16 and fmt in _DEPTH16_FORMATS
    sixteen_cv = sixteen_cv and (image.mode == "rgb" or image.alpha is not None)
    if image.mode == "gray" and fmt == "WEBP":
        notes.append("grayscale written as RGB (WEBP has no grayscale mode)")
    if sixteen_cv and image.mode == "gray":
        notes.append("16-bit gray+alpha written as 16-bit RGBA (no 16-bit gray+alpha writer available)")
    has_meta = bool(image.exif or image.icc_profile)
    if has_meta and (fmt not in _METADATA_FORMATS or (sixteen_cv and fmt == "TIFF")):
        notes.append(f"EXIF/ICC metadata not kept ({fmt} output{' at 16 bits' if fmt == 'TIFF' else ''})")
    return notes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_add_metadata(png: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    """Insert iCCP/eXIf chunks right after IHDR of an OpenCV-encoded PNG (OpenCV cannot write them)."""
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif)
    ihdr_end = 8 + 8 + 13 + 4  # signature + (length, type) + IHDR data + crc
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _encode(
    arr: np.ndarray, fmt: str, exif: bytes | None, icc: bytes | None, quality: int
) -> tuple[bytes, list[str]]:
    """Encode a uint8/uint16 array in source layout; returns the file bytes and extra notes."""
    if arr.dtype == np.uint16 and (arr.ndim == 3):  # 16-bit colour or gray+alpha: OpenCV
        if arr.shape[2] == 2:
            arr = np.dstack([arr[..., 0], arr[..., 0], arr[..., 0], arr[..., 1]])
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
        ext = _FORMAT_TO_EXT[fmt]
        params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "PNG" else []
        ok, buf = cv2.imencode(ext, bgr, params)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode a 16-bit {fmt}")
        data = buf.tobytes()
        if fmt == "PNG" and (exif or icc):
            data = _png_add_metadata(data, exif, icc)
        return data, []
    pil = PILImage.fromarray(arr)
    if fmt == "WEBP" and pil.mode in ("L", "LA"):
        pil = pil.convert("RGBA" if pil.mode == "LA" else "RGB")
    kwargs: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "JPEG" and quality >= 90:
        kwargs["subsampling"] = 0  # 4:4:4: chroma subsampling would blur the colours we just restored
    if fmt == "TIFF":
        kwargs["compression"] = "tiff_lzw"
    if fmt in _METADATA_FORMATS:
        if icc:
            kwargs["icc_profile"] = icc
        if exif:
            kwargs["exif"] = exif
    out = io.BytesIO()
    notes: list[str] = []
    try:
        pil.save(out, format=fmt, **kwargs)
    except Exception:
        if "exif" not in kwargs and "icc_profile" not in kwargs:
            raise
        kwargs.pop("exif", None)
        kwargs.pop("icc_profile", None)
        out = io.BytesIO()
        pil.save(out, format=fmt, **kwargs)  # metadata Pillow refused (malformed EXIF...) is dropped
        notes.append(f"EXIF/ICC metadata could not be written to {fmt} and was dropped")
    return out.getvalue(), notes


def _atomic_write(target: Path, data: bytes) -> None:
    """Write to a temporary file in the target folder, then rename over the target (all or nothing)."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666: honours the umask
    except PermissionError:
        raise ImageWriteError(f"cannot write in folder {target.parent}: permission denied", target) from None
    except OSError as e:
        raise ImageWriteError(f"cannot write in folder {target.parent}: {e.strerror or e}", target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ImageWriteError(f"write failed: {e.strerror or e}", target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _target_and_format(path: Path, image: Image, format: str | None) -> tuple[Path, str]:
    """Resolve the output format and make the extension agree with it."""
    ext_fmt = _EXT_TO_FORMAT.get(path.suffix.lower())
    if format is not None:
        fmt = _canonical_format(format)
        if fmt is None:
            raise ImageWriteError(f"unknown output format {format!r} (supported: {_FORMATS_TEXT})", path)
    elif ext_fmt is not None:
        return path, ext_fmt
    elif path.suffix:
        raise ImageWriteError(f"unsupported output extension {path.suffix!r} (use {_SUPPORTED_TEXT})", path)
    else:
        fmt = _canonical_format(image.format or "") or "PNG"
    if ext_fmt == fmt:
        return path, fmt
    stem = path.stem if ext_fmt is not None else path.name  # replace an image extension, else append
    return path.with_name(stem + _FORMAT_TO_EXT[fmt]), fmt


def _refuse_input(target: Path, src: Path | None) -> None:
    """Never write onto the file the image was read from (also through links or ``..``)."""
    if src is None:
        return
    same = os.path.normpath(os.path.abspath(target)) == os.path.normpath(os.path.abspath(src))
    try:
        same = same or target.resolve() == Path(src).resolve()
        same = same or (target.exists() and Path(src).exists() and os.path.samefile(target, src))
    except OSError:
        pass
    if same:
        raise ImageWriteError("refusing to overwrite the input image; choose another output", target)


def write_image(
    path: str | Path,
    image: Image,
    rgb: np.ndarray,
    *,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Write the enhanced ``rgb`` in the layout of ``image`` and return the path actually written.

    The format is ``format`` if given (the extension is changed to match), else the one ``path``'s
    extension names, else the source's. Gray, alpha, 16 bits, EXIF and ICC are kept where the format
    can hold them; what cannot be kept is reported with a :class:`ConversionWarning` (see
    :func:`conversion_notes`): 16-bit becomes 8-bit in JPEG/WEBP/BMP, alpha is dropped in JPEG/BMP,
    BMP carries no metadata. ``quality`` (1-100) applies to JPEG and WEBP.

    Raises :class:`~sclle.errors.ImageWriteError` if the target exists (unless ``overwrite``), is the
    input file itself (always), or its folder cannot be created or written.
    """
    target, fmt = _target_and_format(Path(path).expanduser(), image, format)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if target.is_dir():
        raise ImageWriteError("is a folder; give a file name", target)
    _refuse_input(target, image.path)
    if target.exists() and not overwrite:
        raise ImageWriteError("exists; use --overwrite to replace it", target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        msg = f"cannot create output folder {target.parent}: {e.strerror or e}"
        raise ImageWriteError(msg, target) from None
    if not target.parent.is_dir():
        raise ImageWriteError(f"output folder {target.parent} is not a folder", target)
    _refuse_input(target, image.path)  # again: "a/../x" only resolves once "a" exists

    depth16 = image.bit_depth == 16 and fmt in _DEPTH16_FORMATS
    arr = _compose(image, rgb, np.dtype(np.uint16 if depth16 else np.uint8), keep_alpha=fmt in _ALPHA_FORMATS)
    sixteen_cv = arr.dtype == np.uint16 and arr.ndim == 3
    keep_meta = fmt in _METADATA_FORMATS and not (sixteen_cv and fmt == "TIFF")
    try:
        data, extra = _encode(
            arr,
            fmt,
            image.exif if keep_meta else None,
            image.icc_profile if keep_meta else None,
            int(quality),
        )
    except Exception as e:
        raise ImageWriteError(f"could not encode {fmt}: {e}", target) from None
    for note in conversion_notes(image, fmt) + extra:
        warnings.warn(f"{target.name}: {note}", ConversionWarning, stacklevel=2)
    _atomic_write(target, data)
    return target


def output_path(
    input_path: str | Path,
    out_dir: str | Path | None,
    *,
    format: str | None = None,
    suffix: str = "",
    relative_to: str | Path | None = None,
) -> Path:
    """Where the result for ``input_path`` goes: ``out_dir / [subfolders /] stem + suffix + extension``.

    Subfolders are kept relative to ``relative_to`` (the folder a recursive search started from); the
    extension is the input's unless ``format`` is given. ``out_dir=None`` means next to the input.
    """
    src = Path(input_path)
    rel = Path(src.name)
    if relative_to is not None:
        try:
            rel = src.relative_to(relative_to)
        except ValueError:
            try:
                rel = src.resolve().relative_to(Path(relative_to).resolve())
            except ValueError:
                rel = Path(src.name)
    ext = src.suffix
    if format is not None:
        fmt = _canonical_format(format)
        if fmt is None:
            raise ValueError(f"unknown format {format!r} (supported: {_FORMATS_TEXT})")
        if _EXT_TO_FORMAT.get(ext.lower()) != fmt:
            ext = _FORMAT_TO_EXT[fmt]
    base = src.parent if out_dir is None else Path(out_dir) / rel.parent
    return base / f"{src.stem}{suffix}{ext}"


# --------------------------------------------------------------------------------------------- finding


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard (subfolders are kept below it)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    found = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(root) / f for f in files if not f.startswith(".") and is_supported(f)]
    else:
        found = [q for q in folder.iterdir() if q.name[0] != "." and is_supported(q) and q.is_file()]
    return found


def find_images(
    inputs: Sequence[str | Path], *, recursive: bool = False
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders and glob patterns into ``[(image path, base folder)]`` plus error lines.

    The base folder is what :func:`output_path` keeps subfolders relative to. Folders are searched
    non-recursively unless ``recursive``; patterns use ``glob.glob(..., recursive=True)`` (``**``
    works). Hidden files are skipped. Result is deduplicated and sorted. Errors (one line each) cover
    missing paths, folders without images, patterns matching nothing and named files of unsupported type.
    """
    found: dict[Path, tuple[Path, Path]] = {}
    errors: list[str] = []

    def add(p: Path, base: Path) -> None:
        key = p.resolve()
        if key not in found:
            found[key] = (p, base)

    for item in inputs:
        s = str(item)
        p = Path(s).expanduser()
        if p.is_file():
            if is_supported(p):
                add(p, p.parent)
            else:
                errors.append(f"{p}: {_unsupported_type(p)}")
        elif p.is_dir():
            images = _images_in(p, recursive)
            if not images:
                has_sub = not recursive and any(q.is_dir() and q.name[0] != "." for q in p.iterdir())
                hint = "; use --recursive to search subfolders" if has_sub else ""
                errors.append(f"{p}: no images found in folder (supported: {_SUPPORTED_TEXT}){hint}")
            for q in images:
                add(q, p)
        elif any(c in s for c in "*?["):
            matches = [Path(m) for m in glob.glob(os.path.expanduser(s), recursive=True)]
            images = [m for m in matches if m.is_file() and is_supported(m)]
            if not images:
                what = "no files" if not matches else f"no images (supported: {_SUPPORTED_TEXT})"
                errors.append(f"{s}: {what} match this pattern")
            base = _glob_base(os.path.expanduser(s))
            for q in images:
                add(q, base)
        else:
            errors.append(f"{p}: no such file or folder")
    return sorted(found.values(), key=lambda t: str(t[0])), errors


# --------------------------------------------------------------------------------------------- compare


def side_by_side(
    before: np.ndarray, after: np.ndarray, *, labels: tuple[str, str] | None = ("input", "enhanced")
) -> np.ndarray:
    """Input and result next to each other (float32 HxWx3), for ``--compare``.

    ``before`` is resized to ``after``'s size if they differ; a thin white bar separates them and each
    half gets a small label (pass ``labels=None`` for none).
    """
    for name, a in (("before", before), ("after", after)):
        if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"{name} must be an HxWx3 array, got shape {getattr(a, 'shape', None)}")
    after = np.clip(after.astype(np.float32), 0.0, 1.0)
    before = np.clip(before.astype(np.float32), 0.0, 1.0)
    h, w = after.shape[:2]
    if before.shape[:2] != (h, w):
        before = cv2.resize(before, (w, h), interpolation=cv2.INTER_AREA)
    halves = [before.copy(), after.copy()]
    if labels is not None:
        scale = max(0.35, min(h, w) / 700)
        thick = max(1, round(scale * 1.5))
        pad = max(2, round(4 * scale))
        font = cv2.FONT_HERSHEY_SIMPLEX
        for half, text in zip(halves, labels, strict=True):
            (tw, th), base = cv2.getTextSize(text, font, scale, thick)
            box_h, box_w = min(h, th + base + 2 * pad), min(w, tw + 2 * pad)
            ink = np.zeros((box_h, box_w), dtype=np.uint8)  # putText draws on 8-bit images only
            cv2.putText(ink, text, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
            box = half[:box_h, :box_w]
            box *= 0.25  # darken behind the label so it reads on bright and dark images
            box += (ink.astype(np.float32) / 255.0)[..., None] * (1.0 - box)
    bar = np.ones((h, max(2, w // 128), 3), dtype=np.float32)
    return np.concatenate([halves[0], bar, halves[1]], axis=1)

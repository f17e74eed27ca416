"""Decoding image files: Pillow for most, OpenCV for what Pillow would cut to 8 bits.

EXIF orientation is applied to the pixels on reading and the tag is reset to 1 in the kept EXIF, so
viewers do not rotate the result a second time. OpenCV decodes 16-bit colour (and 16-bit gray+alpha)
PNG and TIFF, which Pillow would silently cut to 8 bits.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, UnidentifiedImageError
from PIL import Image as PILImage

from sclle.errors import ImageReadError
from sclle.imageio.convert import Image, decode_pil, decoded_image
from sclle.imageio.formats import (
    EXIF_HEADER,
    FORMATS_TEXT,
    canonical_format,
    is_supported,
    unsupported_type,
    with_exif_header,
)

__all__ = ["DEFAULT_MAX_PIXELS", "read_image"]

_ORIENTATION = 0x0112
#: Largest image (width x height) decoded unless the caller raises it: 100 megapixels is about 1.2 GB as
#: float32 RGB before the network's working memory, so a larger file is refused from its header, cheaply.
DEFAULT_MAX_PIXELS = 100_000_000
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels"


def _too_large(width: int | None, height: int | None, pixels: int, limit: int) -> str:
    size = f"{width}x{height} = " if width and height else ""
    return f"image is too large ({size}{_megapixels(pixels)}; limit {_megapixels(limit)}, raise it with --max-pixels)"


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
    start = len(EXIF_HEADER) if exif.startswith(EXIF_HEADER) else 0
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
    raw = with_exif_header(raw)
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


def declared_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) as the file's header declares it, without decoding pixels; None if unreadable.

    For planning only (how many images fit in memory at once): :func:`read_image` still checks the file.
    """
    try:
        with PILImage.open(Path(path).expanduser()) as im:
            return int(im.width), int(im.height)
    except Exception:
        return None


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Read an image file into an :class:`Image` (float32 RGB in [0,1] + what is needed to write it back).

    EXIF orientation is applied to the pixels. 8- and 16-bit gray, gray+alpha, RGB, RGBA and palette
    images are read; anything else, or a file that is missing, corrupt or truncated, raises
    :class:`~sclle.errors.ImageReadError` with a one-line message naming the file.

    ``max_pixels`` (None: no limit of ours) is checked against the size the header *declares*, before
    any pixel is decoded. Pillow's own guard (``PIL.Image.MAX_IMAGE_PIXELS``, refusing above twice its
    value) still applies; the CLI raises it together with ``--max-pixels``. Animations and multi-page
    files are refused rather than cut to their first frame; a camera's multi-picture JPEG (MPO) gives
    its primary picture, as any viewer shows it.
    """
    if max_pixels is not None and int(max_pixels) < 1:
        raise ValueError(f"max_pixels must be a positive number of pixels or None, got {max_pixels}")
    p = Path(path).expanduser()
    if not p.exists():
        if p.is_symlink():
            raise ImageReadError("symbolic link to a missing file (or a link loop)", p)
        raise ImageReadError("no such file", p)
    if p.is_dir():
        raise ImageReadError("is a folder, not an image file", p)
    if not is_supported(p):
        raise ImageReadError(unsupported_type(p), p)
    try:
        if p.stat().st_size == 0:
            raise ImageReadError("file is empty (0 bytes)", p)
        with PILImage.open(p) as im:
            fmt = canonical_format(im.format or "")
            if fmt is None:
                raise ImageReadError(f"unsupported image format {im.format} (supported: {FORMATS_TEXT})", p)
            if im.width == 0 or im.height == 0:
                raise ImageReadError(f"image has zero size ({im.width}x{im.height})", p)
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise ImageReadError(_too_large(im.width, im.height, im.width * im.height, max_pixels), p)
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1 and im.format != "MPO":
                what = "multi-page" if fmt == "TIFF" else "animated"
                raise ImageReadError(
                    f"{what} {fmt} with {frames} frames is not supported (sclle enhances still images; "
                    "extract the frames to separate files first)",
                    p,
                )
            im.load()  # force the full decode: truncated data fails here, not later
            orientation = _orientation(im)
            exif = _kept_exif(im, fmt, orientation)
            use_cv, gray_alpha = _needs_opencv(p, im, fmt)
            if use_cv:
                color, alpha, mode = _decode_opencv(p, gray_alpha)
                depth, icc = 16, im.info.get("icc_profile") or None
            else:
                color, alpha, mode, depth, icc = decode_pil(im)
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError("cannot read: permission denied", p) from None
    except UnidentifiedImageError:
        raise ImageReadError("not a readable image (corrupt file or wrong extension)", p) from None
    except PILImage.DecompressionBombError as e:  # Pillow's own guard, above twice MAX_IMAGE_PIXELS
        m = _BOMB_PIXELS.search(str(e))
        if m is None:
            raise ImageReadError(f"image is too large ({e}); raise the limit with --max-pixels", p) from None
        limit = max_pixels or 2 * int(PILImage.MAX_IMAGE_PIXELS or 0)
        raise ImageReadError(_too_large(None, None, int(m.group(1)), limit), p) from None
    except ValueError as e:
        raise ImageReadError(str(e), p) from None
    except MemoryError:
        raise
    except Exception as e:  # OSError("image file is truncated"), SyntaxError("broken PNG file"), zlib...
        raise ImageReadError(f"corrupt or truncated image ({type(e).__name__}: {e})", p) from None

    color = _apply_orientation(color, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    return decoded_image(color, alpha, mode, depth, format=fmt, exif=exif, icc_profile=icc, path=p)

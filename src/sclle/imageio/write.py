"""Encoding and writing files: same layout as the source where the format can hold it, atomically.

EXIF and ICC profiles are carried over where the output format can hold them (JPEG, PNG, WebP, 8-bit
TIFF; 16-bit colour PNG keeps them too); what cannot be kept is reported as a :class:`ConversionWarning`.
Files are written atomically (:mod:`sclle.core.files`); existing files are kept unless ``overwrite=True``,
also against a concurrent writer (without ``overwrite`` the file is created exclusively, so a file that
appeared meanwhile is not replaced); the input file itself is never overwritten.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image as PILImage

from sclle.core.files import atomic_write
from sclle.errors import ImageWriteError
from sclle.imageio.convert import Image, compose
from sclle.imageio.formats import (
    ALPHA_FORMATS,
    DEPTH16_FORMATS,
    EXIF_HEADER,
    EXT_TO_FORMAT,
    FORMAT_TO_EXT,
    FORMATS_TEXT,
    METADATA_FORMATS,
    SUPPORTED_TEXT,
    ConversionWarning,
    canonical_format,
)

if TYPE_CHECKING:
    import torch

__all__ = ["OutputExistsError", "conversion_notes", "output_path", "write_image"]

#: zlib level of written PNGs. Level 3 encodes 2.8x faster than Pillow's default 6 for files ~6 % larger
#: (`benchmarks/bench_codecs.py` on DICM + LIME: 157 against 431 ms per megapixel, more than fast mode's
#: own compute per megapixel); PNG stays lossless at every level.
PNG_COMPRESS_LEVEL = 3


class OutputExistsError(ImageWriteError):
    """The target exists (or was created meanwhile by another writer) and ``overwrite`` was not given."""


def _store(target: Path, data: bytes, overwrite: bool) -> None:
    """Atomic write with errors a user can act on; without ``overwrite`` an existing file is never replaced."""
    try:
        atomic_write(target, data, exclusive=not overwrite)
    except FileExistsError:
        raise OutputExistsError("exists (written meanwhile by another run); kept", target) from None
    except PermissionError:
        raise ImageWriteError(f"cannot write in folder {target.parent}: permission denied", target) from None
    except OSError as e:
        raise ImageWriteError(f"write failed: {e.strerror or e}", target) from None


def conversion_notes(image: Image, format: str) -> list[str]:
    """What will not survive writing ``image`` as ``format`` (one short sentence each; empty if nothing)."""
    fmt = canonical_format(format)
    if fmt is None:
        raise ValueError(f"unknown format {format!r} (supported: {FORMATS_TEXT})")
    notes = []
    if image.bit_depth == 16 and fmt not in DEPTH16_FORMATS:
        notes.append(f"16-bit image written as 8-bit ({fmt} has no 16-bit mode; PNG and TIFF keep 16 bits)")
    if image.alpha is not None and fmt not in ALPHA_FORMATS:
        notes.append(f"alpha channel dropped ({fmt} output; use PNG, TIFF or WEBP to keep it)")
    sixteen_cv = image.bit_depth == 16 and fmt in DEPTH16_FORMATS
    sixteen_cv = sixteen_cv and (image.mode == "rgb" or image.alpha is not None)
    if image.mode == "gray" and fmt == "WEBP":
        notes.append("grayscale written as RGB (WEBP has no grayscale mode)")
    if sixteen_cv and image.mode == "gray":
        notes.append("16-bit gray+alpha written as 16-bit RGBA (no 16-bit gray+alpha writer available)")
    has_meta = bool(image.exif or image.icc_profile)
    if has_meta and (fmt not in METADATA_FORMATS or (sixteen_cv and fmt == "TIFF")):
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
        extra += _png_chunk(b"eXIf", exif[len(EXIF_HEADER) :] if exif.startswith(EXIF_HEADER) else exif)
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
        ext = FORMAT_TO_EXT[fmt]
        params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESS_LEVEL] if fmt == "PNG" else []
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
    if fmt == "PNG":
        kwargs["compress_level"] = PNG_COMPRESS_LEVEL
    if fmt in METADATA_FORMATS:
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


def _target_and_format(path: Path, image: Image, format: str | None) -> tuple[Path, str]:
    """Resolve the output format and make the extension agree with it."""
    ext_fmt = EXT_TO_FORMAT.get(path.suffix.lower())
    if format is not None:
        fmt = canonical_format(format)
        if fmt is None:
            raise ImageWriteError(f"unknown output format {format!r} (supported: {FORMATS_TEXT})", path)
    elif ext_fmt is not None:
        return path, ext_fmt
    elif path.suffix:
        raise ImageWriteError(f"unsupported output extension {path.suffix!r} (use {SUPPORTED_TEXT})", path)
    else:
        fmt = canonical_format(image.format or "") or "PNG"
    if ext_fmt == fmt:
        return path, fmt
    stem = path.stem if ext_fmt is not None else path.name  # replace an image extension, else append
    return path.with_name(stem + FORMAT_TO_EXT[fmt]), fmt


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
    rgb: np.ndarray | torch.Tensor,
    *,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Write the enhanced ``rgb`` in the layout of ``image`` and return the path actually written.

    ``rgb`` is an HxWx3 float array in [0, 1] or, as the engine returns it, a (1, 3, H, W) float tensor
    (written without a float copy in HxWx3 layout; the same file either way).

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
        raise OutputExistsError("exists; use --overwrite to replace it", target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        msg = f"cannot create output folder {target.parent}: {e.strerror or e}"
        raise ImageWriteError(msg, target) from None
    if not target.parent.is_dir():
        raise ImageWriteError(f"output folder {target.parent} is not a folder", target)
    _refuse_input(target, image.path)  # again: "a/../x" only resolves once "a" exists

    depth16 = image.bit_depth == 16 and fmt in DEPTH16_FORMATS
    arr = compose(image, rgb, np.dtype(np.uint16 if depth16 else np.uint8), keep_alpha=fmt in ALPHA_FORMATS)
    sixteen_cv = arr.dtype == np.uint16 and arr.ndim == 3
    keep_meta = fmt in METADATA_FORMATS and not (sixteen_cv and fmt == "TIFF")
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
    _store(target, data, overwrite)
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
        fmt = canonical_format(format)
        if fmt is None:
            raise ValueError(f"unknown format {format!r} (supported: {FORMATS_TEXT})")
        if EXT_TO_FORMAT.get(ext.lower()) != fmt:
            ext = FORMAT_TO_EXT[fmt]
    base = src.parent if out_dir is None else Path(out_dir) / rel.parent
    return base / f"{src.stem}{suffix}{ext}"

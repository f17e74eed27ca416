"""The file formats sclle reads and writes, and what each can hold (bit depth, alpha, metadata).

One table, so that reading, writing, discovery and the CLI agree on what "supported" means.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ALPHA_FORMATS",
    "DEPTH16_FORMATS",
    "EXT_TO_FORMAT",
    "EXIF_HEADER",
    "FORMATS_TEXT",
    "FORMAT_TO_EXT",
    "METADATA_FORMATS",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_TEXT",
    "ConversionWarning",
    "canonical_format",
    "is_supported",
    "with_exif_header",
    "unsupported_type",
]

EXT_TO_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
#: File extensions read and written (lower case, with the dot; matching is case-insensitive).
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(EXT_TO_FORMAT)
FORMAT_TO_EXT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG"}  # MPO: multi-picture JPEG from cameras
SUPPORTED_TEXT = ", ".join(SUPPORTED_EXTENSIONS)
FORMATS_TEXT = ", ".join(FORMAT_TO_EXT)

DEPTH16_FORMATS = ("PNG", "TIFF")
ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")
METADATA_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
EXIF_HEADER = b"Exif\x00\x00"


def with_exif_header(raw: bytes) -> bytes:
    """An EXIF block as JPEG/WebP writers want it: ``Exif\\0\\0`` first (Pillow gives it with or without)."""
    return raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw


class ConversionWarning(UserWarning):
    """Something of the source could not be kept in the chosen output format (bit depth, alpha, metadata)."""


def is_supported(path: str | Path) -> bool:
    """True when the file extension is one of :data:`SUPPORTED_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in EXT_TO_FORMAT


def unsupported_type(p: Path) -> str:
    """The reason line for a file whose extension is not one we read."""
    return f"unsupported file type {p.suffix or '(no extension)'!r} (supported: {SUPPORTED_TEXT})"


def canonical_format(fmt: str) -> str | None:
    """``"jpg"``, ``".JPEG"``, ``"mpo"`` ... -> ``"JPEG"``; None for a format we do not write."""
    f = fmt.strip().upper().lstrip(".")
    f = _FORMAT_ALIASES.get(f, f)
    return f if f in FORMAT_TO_EXT else None

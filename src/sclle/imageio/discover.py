"""Finding the images named on a command line: files, folders (optionally recursive) and glob patterns."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from sclle.imageio.formats import SUPPORTED_TEXT, is_supported, unsupported_type

__all__ = ["find_images"]


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard (subfolders are kept below it)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def resolved(p: Path) -> Path:
    """``p.resolve()`` that cannot fail: a link loop (RuntimeError/OSError) gives the absolute path instead."""
    try:
        return p.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(p))


def _candidate(q: Path) -> bool:
    """A file, or a dangling/looping link (kept so that reading it reports a failed line, not silence)."""
    return q.is_file() or (q.is_symlink() and not q.exists())


def _images_in(folder: Path, recursive: bool, errors: list[str]) -> list[Path]:
    """Candidate images in ``folder``; folders that cannot be listed add a line to ``errors``."""

    def unreadable(e: OSError) -> None:
        errors.append(f"{e.filename}: cannot list folder ({e.strerror or e})")

    found = []
    if recursive:
        for root, dirs, files in os.walk(folder, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(root) / f for f in files if not f.startswith(".") and is_supported(f)]
    else:
        try:
            found = [q for q in folder.iterdir() if q.name[0] != "." and is_supported(q) and _candidate(q)]
        except OSError as e:
            unreadable(e)
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
        key = resolved(p)
        if key not in found:
            found[key] = (p, base)

    for item in inputs:
        s = str(item)
        p = Path(s).expanduser()
        if p.is_file():
            if is_supported(p):
                add(p, p.parent)
            else:
                errors.append(f"{p}: {unsupported_type(p)}")
        elif p.is_dir():
            n_errors = len(errors)
            images = _images_in(p, recursive, errors)
            if not images and len(errors) == n_errors:
                has_sub = not recursive and any(q.is_dir() and q.name[0] != "." for q in p.iterdir())
                hint = "; use --recursive to search subfolders" if has_sub else ""
                errors.append(f"{p}: no images found in folder (supported: {SUPPORTED_TEXT}){hint}")
            for q in images:
                add(q, p)
        elif p.is_symlink():
            errors.append(f"{p}: symbolic link to a missing file (or a link loop)")
        elif any(c in s for c in "*?["):
            matches = [Path(m) for m in glob.glob(os.path.expanduser(s), recursive=True)]
            images = [m for m in matches if _candidate(m) and is_supported(m)]
            if not images:
                what = "no files" if not matches else f"no images (supported: {SUPPORTED_TEXT})"
                errors.append(f"{s}: {what} match this pattern")
            base = _glob_base(os.path.expanduser(s))
            for q in images:
                add(q, base)
        else:
            errors.append(f"{p}: no such file or folder")
    return sorted(found.values(), key=lambda t: str(t[0])), errors

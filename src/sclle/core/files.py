"""File helpers every writer shares: atomic writes (bytes, JSON, path-wanting writers), file hashes,
natural sort, output paths that cannot escape.

Atomic means all or nothing: data goes to a temporary file in the target's folder (same file system),
is flushed to disk, then renamed over the target, so a crash or a full disk never leaves a partial file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sclle.errors import SclleError

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str | os.PathLike) -> tuple:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (digit runs compare as numbers)."""
    parts = _DIGITS.split(str(text))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)


def natural_sorted(items, key: Callable | None = None) -> list:
    """``sorted`` with :func:`natural_key` (of ``key(item)`` if given)."""
    if key is None:
        return sorted(items, key=natural_key)
    return sorted(items, key=lambda it: natural_key(key(it)))


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


#: link() errors of file systems without hard links (FAT/exFAT drives, some network shares).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}


def _move_exclusive(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` only if ``target`` does not exist (FileExistsError otherwise).

    A hard link does it atomically. Where the file system has none, an ``O_EXCL`` placeholder claims the
    name (still exclusive), then the rename fills it: the name is briefly an empty file there.
    """
    try:
        os.link(tmp, target)  # atomic "create if absent"
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, target)
    else:
        os.unlink(tmp)


@contextmanager
def atomic_open(target: str | Path, *, exclusive: bool = False, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``target``; on success it replaces ``target`` atomically.

    ``exclusive=True`` never replaces an existing file: the final step is a hard link, which fails if
    the target appeared meanwhile (two runs writing the same output cannot replace each other's file).
    Raises :class:`FileExistsError` then. Any failure removes the temporary file.
    """
    target = Path(target)
    tmp = _temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666: honours the umask
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            _move_exclusive(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(target: str | Path, data: bytes | str, *, exclusive: bool = False) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``target`` atomically; see :func:`atomic_open`."""
    target = Path(target)
    payload = data.encode() if isinstance(data, str) else data
    with atomic_open(target, exclusive=exclusive) as f:
        f.write(payload)
    return target


def write_json(
    target: str | Path, obj: Any, *, indent: int = 2, exclusive: bool = False, **dumps: Any
) -> Path:
    """Write ``obj`` as JSON (UTF-8, trailing newline) to ``target`` atomically; ``dumps`` go to :func:`json.dumps`."""
    return atomic_write(target, json.dumps(obj, indent=indent, **dumps) + "\n", exclusive=exclusive)


def atomic_save(target: str | Path, save: Callable[[Path], object]) -> Path:
    """Atomically produce ``target`` with a writer that wants a path (``torch.save``, ONNX export...)."""
    target = Path(target)
    tmp = _temp_name(target)
    try:
        save(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def hash_file(path: str | Path, algorithm: str = "sha256"):
    """The :mod:`hashlib` object of ``path``'s bytes (read in chunks: weights files are hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file: what weights entries and exported metadata record."""
    return hash_file(path).hexdigest()


def inside(path: str | Path, folder: str | Path) -> bool:
    """True if ``path`` (resolved, links followed) lies inside ``folder``."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def safe_join(folder: str | Path, relative: str | Path) -> Path:
    """``folder / relative``, refused when the result would lie outside ``folder`` (``..``, absolute parts)."""
    folder = Path(folder)
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise SclleError(f"output path {str(relative)!r} would leave the output folder", folder)
    out = folder / rel
    if not inside(out, folder):
        raise SclleError(f"output path {str(relative)!r} would leave the output folder", folder)
    return out

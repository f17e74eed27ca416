"""Errors a user can act on.

Every exception raised for bad input, missing files or bad weights is a :class:`SclleError`
whose message is a single line naming the file (if any) and the reason. The CLI prints
``error: <message>`` for these and never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SclleError(Exception):
    """A user-facing error with a one-line message."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        message = " ".join(str(message).split())  # force one line
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class ImageReadError(SclleError):
    """An input image is missing, unreadable, corrupt or of an unsupported format."""


class ImageWriteError(SclleError):
    """An output could not be written (folder not writable, unsupported output format...)."""


class WeightsError(SclleError):
    """Weights are missing, cannot be downloaded, or fail their hash check."""

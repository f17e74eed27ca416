"""Test helpers: locate ``../shared`` (or ``$SCLLE_SHARED``) and skip cleanly without it."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCLLE_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside the shared folder, or skip the test with the reason."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (set SCLLE_SHARED to the shared data folder); not present here")
    return p


@pytest.fixture
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def dce_weights(tmp_path_factory) -> Path:
    """A tiny seeded DCE-Net state dict that brightens (fast CLI tests without released weights)."""
    import torch

    from sclle.models.dce import DCENet

    torch.manual_seed(0)
    net = DCENet()
    with torch.no_grad():
        net.e_conv7.bias.fill_(-0.5)  # brightening curves
    p = tmp_path_factory.mktemp("w") / "dce.pth"
    torch.save(net.state_dict(), p)
    return p


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` (its pixel data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )

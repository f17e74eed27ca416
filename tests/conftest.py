"""Test helpers: locate ``../shared`` (or ``$SCLLE_SHARED``) and skip cleanly without it."""

from __future__ import annotations

import os
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

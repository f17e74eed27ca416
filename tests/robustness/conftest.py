"""The robustness suite reports how many generated cases it ran, in pytest's terminal summary."""

from __future__ import annotations

import pytest

_CASES: dict[str, int] = {}


@pytest.fixture
def record_cases() -> dict[str, int]:
    """``record_cases[what] = n`` adds a line "n what" to the summary."""
    return _CASES


def pytest_terminal_summary(terminalreporter) -> None:
    if _CASES:
        terminalreporter.write_sep("-", "robustness cases")
        for what, n in sorted(_CASES.items()):
            terminalreporter.write_line(f"{n:5d} {what}")
        terminalreporter.write_line(f"{sum(_CASES.values()):5d} in all")

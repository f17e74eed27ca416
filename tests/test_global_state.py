"""conftest's autouse fixture puts torch's process-wide settings back after each test.

The first test changes them the way other tests do (``torch.set_num_threads(1)`` for reproducible sums);
the second, which runs after it, sees the values the session started with.
"""

from __future__ import annotations

import pytest
import torch

from sclle.core.device import flush_denormals

_START: dict[str, object] = {}


def _state() -> dict[str, object]:
    return {
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "grad": torch.is_grad_enabled(),
        # subnormals kept (the default) or flushed to zero (what the training CLI sets)
        "subnormals": torch.tensor(1e-40, dtype=torch.float32).item() != 0,
    }


def test_a_test_may_change_torch_globals():
    _START.update(_state())
    torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)
    torch.set_default_dtype(torch.float64)
    # determinism is restored too; not toggled here: the first use_deterministic_algorithms call costs seconds
    torch.set_grad_enabled(False)
    if flush_denormals():  # x86 with SSE3, ARM with FZ: the multiply underflows to exactly zero
        assert (torch.full((1,), 1e-20, dtype=torch.float32) ** 2).item() == 0.0
    assert _state() != _START


def test_the_next_test_sees_them_restored():
    if not _START:
        pytest.skip("needs test_a_test_may_change_torch_globals to run first")
    assert _state() == _START

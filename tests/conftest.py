"""Shared fixtures: the shared-data folder, tiny weights and training data, restoring torch's global state.

Plain helper functions live in ``_helpers.py`` and are re-exported here: test modules import them with
``from conftest import ...`` (the one local module ruff knows), never from each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from _helpers import (  # noqa: F401  (re-exported: test modules import helpers from conftest)
    ROOT,
    SHARED,
    exposures,
    make_random_camvid,
    make_street_camvid,
    make_train_cfg,
    png_declaring,
    shared_path,
    textured_scene,
    write_rgb,
)


@pytest.fixture(autouse=True)
def _restore_torch_globals() -> Iterator[None]:
    """Undo what a test set process-wide (threads, default dtype, determinism, grad mode).

    Several tests pin ``torch.set_num_threads(1)`` for reproducible sums; without this the rest of the run
    would silently inherit that, and a test's result would depend on which tests ran before it.
    """
    threads = torch.get_num_threads()
    dtype = torch.get_default_dtype()
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    grad = torch.is_grad_enabled()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if torch.get_default_dtype() != dtype:
        torch.set_default_dtype(dtype)
    if (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    ) != (deterministic):
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    torch.set_grad_enabled(grad)
    torch.set_flush_denormal(False)  # the default; torch has no getter, and the training CLI turns it on


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: one thread avoids OpenMP barrier stalls on a busy 2-core machine (restored after).

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def dce_weights(tmp_path_factory) -> Path:
    """A tiny seeded DCE-Net state dict that brightens (fast CLI tests without released weights)."""
    from sclle.models.dce import DCENet

    torch.manual_seed(0)
    net = DCENet()
    with torch.no_grad():
        net.e_conv7.bias.fill_(-0.5)  # brightening curves
    p = tmp_path_factory.mktemp("w") / "dce.pth"
    torch.save(net.state_dict(), p)
    return p


# ------------------------------------------------------------------------------------------ training runs


@pytest.fixture(scope="module")
def vgg():
    """The pretrained VGG-16 layers of the SCL-LLE losses (offline weights), once per test module."""
    from sclle.models.vgg import VGG16Features

    try:
        return VGG16Features(("relu1_2", "relu2_2", "relu4_3"))
    except Exception as exc:  # offline weights not installed
        pytest.skip(f"VGG-16 weights unavailable: {exc}")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Tiny CamVid-layout street scenes, a tiny contrast pool and a validation folder, for ``make_train_cfg``.

    Module-scoped: tests of one module share its VGG statistics cache (``data/cache``); other modules start
    fresh.
    """
    import numpy as np

    from sclle.data.contrast import PoolParams, build_pool

    root = tmp_path_factory.mktemp("data")
    make_street_camvid(root / "camvid", n=4, h=40, w=48)
    rng = np.random.default_rng(0)
    src = root / "frames"
    src.mkdir()
    rows = []
    for s in range(3):
        for k, f in enumerate(exposures(textured_scene(rng, 64))):
            name = f"{s}_{k}.png"
            write_rgb(src / name, f)
            rows.append(f"{name},{s}\n")
    (src / "sequences.csv").write_text("file,sequence_id\n" + "".join(rows))
    build_pool(
        src,
        root / "pool",
        params=PoolParams(size=48, align_side=64, corr_side=32),
        progress=False,
        sheet=False,
    )
    (root / "val").mkdir()
    for i in range(2):
        write_rgb(root / "val" / f"v{i}.png", textured_scene(rng, 96) * 0.2)
    return root

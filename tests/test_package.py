"""The public surface: top-level API names, submodules importable by their dotted path."""

from __future__ import annotations

import importlib

import sclle


def test_public_api():
    assert callable(sclle.enhance) and callable(sclle.load_model) and callable(sclle.list_models)
    assert sclle.__version__


def test_submodules_import_by_dotted_path():
    # ``sclle.enhance`` is the function; the subpackage has its own name so both stay reachable.
    for name in ("enhancement.engine", "enhancement.methods", "enhancement.baselines", "metrics", "io"):
        assert importlib.import_module(f"sclle.{name}")
    import sclle.enhancement.baselines as baselines

    assert "lime" in baselines.BASELINES

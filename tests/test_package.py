"""The public surface and the layering: no import cycles, no private names across modules, core at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import sclle

SRC = Path(sclle.__file__).parent


def test_public_api():
    assert callable(sclle.enhance) and callable(sclle.load_model) and callable(sclle.list_models)
    assert sclle.__version__ == __import__("importlib.metadata").metadata.version("sclle")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, *, top_level_only: bool) -> list[tuple[str, list[str]]]:
    """(imported sclle module, imported names) for each import in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("sclle")
            and node.level == 0
        ):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("sclle")]
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for target, names in _imports(p, top_level_only=top_level_only):
            for cand in [f"{target}.{n}" for n in names] + [target]:
                if cand in mods and cand != m:
                    graph[m].add(cand)
                    break
    return graph


def test_no_import_cycles_at_module_level():
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n] if n in stack else [m, n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles[:3]}"


#: Code outside the package that uses it the way users do: it may only use public names too.
CLIENTS = [SRC.parents[1] / "scripts", SRC.parents[1] / "benchmarks"]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_attribute_uses(path: Path) -> list[str]:
    """``mod._name`` where ``mod`` is bound by an import of a sclle module (reaching into its privates)."""
    tree = ast.parse(path.read_text())
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("sclle")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sclle"):
            bound |= {a.asname or a.name for a in node.names}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(f"{path.name}:{node.lineno} uses {ast.unparse(node)}")
    return found


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for p in SRC.rglob("*.py"):
        for target, names in _imports(p, top_level_only=False):
            bad += [f"{_module_name(p)} imports {target}.{n}" for n in names if _private(n)]
    assert not bad, bad


def test_no_private_name_is_reached_through_a_module():
    bad = [use for p in SRC.rglob("*.py") for use in _private_attribute_uses(p)]
    assert not bad, bad


def test_scripts_and_benchmarks_use_only_public_names():
    files = [p for folder in CLIENTS if folder.is_dir() for p in folder.rglob("*.py")]
    assert files, f"no scripts found under {CLIENTS}"
    bad = []
    for p in files:
        for target, names in _imports(p, top_level_only=False):
            bad += [f"{p.name} imports {target}.{n}" for n in names if _private(n)]
        bad += _private_attribute_uses(p)
    assert not bad, bad


def test_scripts_and_benchmarks_import_only_names_that_exist():
    """A script's lazy ``from sclle.x import y`` breaks only when run; catch a removed or renamed name here."""
    import importlib

    files = [p for folder in CLIENTS if folder.is_dir() for p in folder.rglob("*.py")]
    bad = []
    for p in files:
        for target, names in _imports(p, top_level_only=False):
            module = importlib.import_module(target)
            bad += [f"{p.name} imports {target}.{n}" for n in names if not hasattr(module, n)]
    assert not bad, bad


def test_core_is_the_bottom_layer():
    for p in (SRC / "core").rglob("*.py"):
        for target, _ in _imports(p, top_level_only=False):
            assert target.startswith(("sclle.core", "sclle.errors")), f"{p.name} imports {target}"
    for p in (SRC / "imageio").rglob("*.py"):
        for target, _ in _imports(p, top_level_only=False):
            assert target.startswith(("sclle.core", "sclle.errors", "sclle.imageio")), (
                f"{p.name} imports {target}"
            )


def test_lower_layers_never_import_the_cli_or_evaluation():
    for p in SRC.rglob("*.py"):
        mod = _module_name(p)
        if mod.startswith(("sclle.cli", "sclle.__main__")):
            continue
        for target, _ in _imports(p, top_level_only=False):
            assert not target.startswith("sclle.cli"), f"{mod} imports {target}"
            if mod.startswith(("sclle.models", "sclle.losses", "sclle.data", "sclle.metrics", "sclle.train")):
                assert not target.startswith("sclle.evaluate"), f"{mod} imports {target}"


def test_evaluation_report_never_imports_the_runner():
    """report renders results, the runner calls report; lazy imports count too, so the cycle cannot return."""
    report = {t for t, _ in _imports(SRC / "evaluate" / "report.py", top_level_only=False)}
    assert "sclle.evaluate.results" in report  # what it renders
    assert not {t for t in report if t.startswith(("sclle.evaluate.runner", "sclle.evaluate.cache"))}
    runner = _imports(SRC / "evaluate" / "runner.py", top_level_only=True)
    assert ("sclle.evaluate", ["report"]) in runner  # the one direction that is allowed


#: What each layer may import (README "Layout"); ``sclle.errors`` is open to all and ``cli`` may import
#: anything. A new subpackage must be added here, so the table cannot silently fall behind.
ALLOWED_LAYERS: dict[str, set[str]] = {
    "core": set(),
    "imageio": {"core"},
    "data": {"core", "imageio"},
    "models": {"core", "imageio"},
    "metrics": {"core", "imageio", "models"},
    "losses": {"core", "imageio", "models", "metrics"},
    "train": {"core", "imageio", "data", "models", "losses", "metrics"},
    "enhancement": {"core", "imageio", "models"},
    "evaluate": {"core", "imageio", "data", "models", "metrics", "enhancement"},
}
#: Top-level modules outside the layering: the public API and entry point sit on top, errors at the bottom.
UNLAYERED = {"sclle", "sclle.__main__", "sclle.errors"}


def _imported_modules(path: Path, mods: set[str], module: str | None = None) -> list[tuple[int, str]]:
    """(line, sclle module) for every import in ``path`` (module ``module``), lazy and relative ones included.

    ``from sclle import imageio`` counts as importing ``sclle.imageio``, ``from sclle.data import camvid``
    as ``sclle.data.camvid``.
    """
    here = (module or _module_name(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((node.lineno, sub if sub in mods else target))
    return [(line, m) for line, m in found if m == "sclle" or m.startswith("sclle.")]


def _layer(module: str) -> str | None:
    return None if module in UNLAYERED else module.split(".")[1]


def test_layers_import_only_the_layers_below_them():
    mods = {_module_name(p) for p in SRC.rglob("*.py")}
    layers = {_layer(m) for m in mods} - {None}
    assert layers == {*ALLOWED_LAYERS, "cli"}, f"layers without a rule (or rules without a layer): {layers}"
    bad = []
    for p in SRC.rglob("*.py"):
        mod = _module_name(p)
        src = _layer(mod)
        if src in (None, "cli"):
            continue
        for line, target in _imported_modules(p, mods):
            dst = _layer(target)
            if target == "sclle":
                bad.append(f"{mod}:{line} imports the top-level sclle package")
            elif dst is not None and dst != src and dst not in ALLOWED_LAYERS[src]:
                bad.append(f"{mod}:{line} ({src}) imports {target} ({dst})")
    assert not bad, bad


def test_the_layer_rule_sees_lazy_relative_and_from_package_imports(tmp_path):
    """The scan behind the layer rule finds every kind of import a layer could sneak past it."""
    mods = {_module_name(p) for p in SRC.rglob("*.py")}
    fake = tmp_path / "fake.py"
    fake.write_text(
        "import numpy\n"
        "from sclle import imageio\n"
        "def f():\n"
        "    from sclle.losses import contrastive\n"
        "    import sclle.train.trainer\n"
        "    from ..metrics import exposure\n"
        "    from .camvid import CLASS_NAMES\n"
    )
    found = [m for _, m in _imported_modules(fake, mods, "sclle.data.fake")]
    assert found == [
        "sclle.imageio",
        "sclle.losses.contrastive",
        "sclle.train.trainer",
        "sclle.metrics.exposure",
        "sclle.data.camvid",
    ]
    assert [_layer(m) for m in found] == ["imageio", "losses", "train", "metrics", "data"]

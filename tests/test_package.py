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
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sclle") and node.level == 0:
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


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for p in SRC.rglob("*.py"):
        for target, names in _imports(p, top_level_only=False):
            bad += [f"{_module_name(p)} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_core_is_the_bottom_layer():
    for p in (SRC / "core").rglob("*.py"):
        for target, _ in _imports(p, top_level_only=False):
            assert target.startswith(("sclle.core", "sclle.errors")), f"{p.name} imports {target}"
    for p in (SRC / "imageio").rglob("*.py"):
        for target, _ in _imports(p, top_level_only=False):
            assert target.startswith(("sclle.core", "sclle.errors", "sclle.imageio")), f"{p.name} imports {target}"


def test_lower_layers_never_import_the_cli_or_evaluation():
    for p in SRC.rglob("*.py"):
        mod = _module_name(p)
        if mod.startswith(("sclle.cli", "sclle.__main__")):
            continue
        for target, _ in _imports(p, top_level_only=False):
            assert not target.startswith("sclle.cli"), f"{mod} imports {target}"
            if mod.startswith(("sclle.models", "sclle.losses", "sclle.data", "sclle.metrics", "sclle.train")):
                assert not target.startswith("sclle.evaluate"), f"{mod} imports {target}"

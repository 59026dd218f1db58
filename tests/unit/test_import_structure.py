"""No import circles in wsol_lightning, and arrows run down the layers (a static check of every import).

Every ``import``/``from ... import`` of a ``wsol_lightning`` module is read from the source with ``ast``, at module
level and inside functions alike (a lazy import only hides a circle until the function runs); imports under
``if TYPE_CHECKING:`` are type hints, not imports, and are left out. The layers are those of DESIGN.md:
``cli -> callbacks -> methods/data -> metrics/backbones -> types``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "wsol_lightning"
LAYERS = {"types": 0, "metrics": 1, "backbones": 1, "methods": 2, "data": 2, "callbacks": 3, "cli": 4}


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of the package (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import node, skipping the bodies of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module prefix of ``name`` (``pkg.mod.func`` -> ``pkg.mod``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (the top-level package ``__init__`` left out: it imports nothing)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                found = _resolve(target, modules) if target.startswith(PACKAGE) else None
                if found and found not in (module, PACKAGE):
                    graph[module].add(found)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted; sorted list."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return sorted(cycles)


def layer_of(module: str) -> int | None:
    """The DESIGN.md layer of ``wsol_lightning.<part>...`` (``None`` for modules outside the layered folders)."""
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from one layered folder into another of the same or a higher layer, as ``a -> b`` lines."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = layer_of(module), layer_of(target)
            if a is not None and b is not None and module.split(".")[1] != target.split(".")[1] and b >= a:
                bad.append(f"{module} -> {target}")
    return bad


def test_the_check_sees_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    """A circle closed only by a function-level import is found; a TYPE_CHECKING import is not an edge."""
    pkg = tmp_path / PACKAGE / "data"
    pkg.mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("from .dataset import Dataset\n")
    (pkg / "dataset.py").write_text("def f():\n    from wsol_lightning.data.coco import g\n")
    (pkg / "coco.py").write_text("from wsol_lightning.data.base import X\n")
    (pkg / "hints.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from wsol_lightning.data.base import X\n")
    (pkg / "uses_hints.py").write_text("from wsol_lightning.data import hints\n")
    modules = module_files(tmp_path)
    graph = import_graph(modules)
    assert graph[f"{PACKAGE}.data.base"] == {f"{PACKAGE}.data.dataset"}  # relative import resolved
    assert graph[f"{PACKAGE}.data.hints"] == set()
    assert graph[f"{PACKAGE}.data.uses_hints"] == {f"{PACKAGE}.data.hints"}
    assert find_cycles(graph) == [[f"{PACKAGE}.data.base", f"{PACKAGE}.data.coco", f"{PACKAGE}.data.dataset"]]
    assert upward_imports({"wsol_lightning.metrics.box": {"wsol_lightning.methods.base"},
                           "wsol_lightning.methods.base": {"wsol_lightning.metrics.box"}}) == [
        "wsol_lightning.metrics.box -> wsol_lightning.methods.base"]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_files())


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    assert len(graph) > 50  # the whole package was read
    assert find_cycles(graph) == [], "import circles (move the shared helper down a layer)"


def test_arrows_run_down_the_layers(graph: dict[str, set[str]]) -> None:
    assert upward_imports(graph) == [], "cli -> callbacks -> methods/data -> metrics/backbones -> types"


def test_old_homes_of_moved_helpers_still_work() -> None:
    """``decode_segmentations`` and ``stratified_holdout`` moved down but keep their public import paths."""
    from wsol_lightning.data import coco, parsing, pets, sampling

    assert coco.decode_segmentations is parsing.decode_segmentations
    assert pets.stratified_holdout is sampling.stratified_holdout
    assert coco.stratified_holdout is sampling.stratified_holdout

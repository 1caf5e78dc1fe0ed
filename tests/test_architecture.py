"""The package's layering, read statically from its source (ast, no import is executed).

* no import cycle between csc_jax's units (a subpackage such as csc_jax.training, or a
  top-level module such as csc_jax.losses), counting function-local imports too;
* csc_jax.training never imports csc_jax.evaluation (evaluators are handed in);
* losses.py and metrics.py stay free of Flax/optax, losses.py of numpy too;
* a module over 500 lines says in its docstring why it is long.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "csc_jax"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """csc_jax modules imported anywhere in ``path`` (``from X import name`` counts X.name
    when that is a module, else X)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            ]
        else:
            continue
        found.update(n for n in names if n == "csc_jax" or n.startswith("csc_jax."))
    return found


def unit_of(module: str) -> str:
    """csc_jax.training.loop -> csc_jax.training; csc_jax.losses -> csc_jax.losses."""
    return ".".join(module.split(".")[:2])


def dependency_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        src = unit_of(name)
        for target in _imports(path, modules):
            dst = unit_of(target)
            if dst != src and dst != "csc_jax":
                graph.setdefault(src, set()).add(dst)
        graph.setdefault(src, set())
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_units():
    cycles = find_cycles(dependency_graph())
    assert cycles == [], f"import cycles between csc_jax units: {cycles}"


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_training_never_imports_evaluation():
    modules = _modules()
    offenders = sorted(
        f"{name} imports {target}"
        for name, path in modules.items()
        if name.startswith("csc_jax.training")
        for target in _imports(path, modules)
        if target.startswith("csc_jax.evaluation")
    )
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "banned"),
    [("csc_jax.losses", ("flax", "optax", "numpy")), ("csc_jax.metrics", ("flax", "optax"))],
)
def test_pure_modules_import_no_framework(module, banned):
    path = _modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & set(banned), f"{module} imports {sorted(imported & set(banned))}"


def test_long_modules_say_why():
    unexplained = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "long because" not in doc.lower():
            unexplained.append(f"{name} ({text.count(chr(10))} lines)")
    assert unexplained == [], f"modules over {MAX_LINES} lines without a reason: {unexplained}"

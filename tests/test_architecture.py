"""The package's layering, read from the source: no import cycle between rsdistill's modules.

Every import counts, top-level and deferred (inside a function) alike, since a deferred import that
closes a cycle only postpones the "partially initialised module" error to the call that runs it.
Only ``if TYPE_CHECKING:`` imports are left out: they never run. Importing ``a.b.c`` also runs the
``__init__`` of ``a`` and ``a.b``, so it counts as importing those packages too."""

from __future__ import annotations

import ast
from pathlib import Path

import rsdistill

ROOT = Path(rsdistill.__file__).parent
PACKAGE = "rsdistill"


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _runtime_imports_of(child))
            continue
        yield from _runtime_imports_of(node)


def _runtime_imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif not (isinstance(node, ast.If) and _is_type_checking(node)):
        yield from _runtime_imports(node)


def _with_parents(name: str, importer: str) -> set[str]:
    """``name`` and the packages above it, except the importer's own packages: those are already
    being initialised when the importer runs, so importing a sibling does not run them again."""
    parts = name.split(".")
    own = importer.split(".")
    own_packages = {".".join(own[:i]) for i in range(1, len(own))}
    return ({".".join(parts[:i]) for i in range(2, len(parts) + 1)} & set(MODULES)) - own_packages


def imports_of(name: str) -> set[str]:
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = here[: len(here) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            # `from pkg import name`: name may itself be a module of the package.
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        for t in targets:
            if t.startswith(PACKAGE + "."):
                found |= _with_parents(t, name)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_graph_reader_sees_deferred_relative_and_package_imports():
    # the CLI reaches the API, and the API the experiments, only through imports inside functions
    assert "rsdistill.api" in imports_of("rsdistill.cli")
    assert "rsdistill.experiments.single" in imports_of("rsdistill.api")
    # a deferred import inside a validator counts like a top-level one
    assert "rsdistill.models.registry" in imports_of("rsdistill.config")
    # importing a module runs the __init__ of the packages above it
    assert "rsdistill.engine" in imports_of("rsdistill.experiments.single")


def test_a_cycle_is_found_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = {n: imports_of(n) for n in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# The packages (and top-level modules) from the bottom up: each may import only those before it,
# deferred imports included (docs/development.md). The root package, the public facade, is on top.
ORDER = ["errors", "section", "yamlfile", "io", "shipped", "synth", "models", "runs", "data", "distillers", "config",
         "reports", "engine", "loss", "deploy", "analysis", "experiments", "api", "cli", "__main__", "rsdistill"]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if ORDER.index(package_of(t)) > ORDER.index(package_of(m)))


def test_no_package_imports_one_above_it():
    assert {package_of(m) for m in MODULES} == set(ORDER), "a new package or module: give it its place in ORDER"
    upward = upward_imports({m: imports_of(m) for m in MODULES})
    assert not upward, "imports of a package above: " + "; ".join(upward)


def test_an_import_of_a_package_above_is_found():
    # what data.datamodule did before the data section moved into data/
    assert upward_imports({"rsdistill.data.datamodule": {"rsdistill.config", "rsdistill.data.splits"}}) == [
        "rsdistill.data.datamodule -> rsdistill.config"]
    assert upward_imports({"rsdistill.config": {"rsdistill.data.config"}}) == []

"""The package's import graph keeps the layering of docs/architecture.md: no cycles,
the compiler never imports the runtime, the command line or a model engine, and only
the command line and the Python API know the compiler and the runtime together."""
import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"circ": ROOT / "circ", "circ.grammar": ROOT / "grammar",
            "circ.compiler": ROOT / "compiler", "circ.runtime": ROOT / "runtime"}
ENGINES = ("torch", "transformer_lens", "transformers")


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package] + parts)
            if package == "circ" and parts and parts[0] in ("compiler", "runtime", "grammar"):
                continue
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, at the top or inside a function: the circ modules
    resolved to the module (not the package) they name, others by their top name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return {t if t.split(".")[0] == "circ" else t.split(".")[0] for t in targets}


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        graph.add_node(name)
        for target in _imports(name, path):
            if target in MODULES and target != name:
                graph.add_edge(name, target)
            elif target.split(".")[0] != "circ":
                graph.add_edge(name, target)
    return graph


GRAPH = _graph()


def test_the_walk_sees_the_whole_package():
    assert "circ.compiler.check.binding" in MODULES and "circ.runtime.execute.executor" in MODULES
    assert "circ.cli.main" in MODULES and len(MODULES) > 100
    assert GRAPH.has_edge("circ.compiler.check.binding", "circ.compiler.check.nodesets")


def test_no_import_cycles():
    circ_only = GRAPH.subgraph(n for n in GRAPH if n.startswith("circ"))
    cycles = list(nx.simple_cycles(circ_only))
    assert cycles == []


@pytest.mark.parametrize("forbidden", ["circ.runtime", "circ.cli", *ENGINES])
def test_the_compiler_imports_no_runtime_cli_or_engine(forbidden):
    offenders = sorted(f"{module} -> {target}" for module, target in GRAPH.edges
                       if module.startswith("circ.compiler")
                       and (target == forbidden or target.startswith(forbidden + ".")))
    assert offenders == []


def test_the_runtime_holds_no_command_line():
    offenders = sorted(f"{module} -> {target}" for module, target in GRAPH.edges
                       if module.startswith("circ.runtime") and target.startswith("circ.cli"))
    assert offenders == []
    assert not [m for m in MODULES if m.startswith(("circ.runtime", "circ.compiler")) and "click" in GRAPH[m]]

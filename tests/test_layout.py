"""The package's rooms and who may import whom, as docs/architecture.md draws it ("Layout").

Every import in ``sim`` is read with ``ast``, imports inside functions included: a module
may import its own package and the packages below it, never one above, and no set of
modules imports itself round in a circle. Imports under ``if TYPE_CHECKING:`` never run,
so they are left out of the circles, but they too must point down the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"

DOC = SIM.parent / "docs" / "architecture.md"


def read_layers(doc: str) -> list[tuple[str, tuple[str, ...]]]:
    """The layer table of docs/architecture.md, bottom first: (name, module prefixes)."""
    block = doc.split("<!-- layers: top to bottom -->", 1)[1].split("```", 2)[1]
    layers = []
    for line in block.strip().splitlines():
        name, *rest = line.split()
        paths = [w for w in rest if w.startswith("sim/")]
        prefixes = tuple(w.removesuffix("/").removesuffix(".py").replace("/", ".") for w in paths)
        assert prefixes, f"docs/architecture.md layer {name!r} names no sim/ path"
        layers.append((name, prefixes))
    return layers[::-1]


LAYERS = read_layers(DOC.read_text())


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of docs/architecture.md's layout")


def module_name(path: Path) -> str:
    parts = path.relative_to(SIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported sim module, only under TYPE_CHECKING, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[str, bool, int]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            parent = package.split(".")
            base = ".".join(parent[: len(parent) - node.level + 1] + ([base] if base else []))
        # "from sim.run import workspace" imports a module; "from sim.x import name" its module
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for inner in child.body:
                    visit_one(inner, True)
                for inner in child.orelse:
                    visit_one(inner, typing_only)
            else:
                visit_one(child, typing_only)

    def visit_one(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in targets(node):
                if target == "sim" or target.startswith("sim."):
                    found.append((target, typing_only, node.lineno))
        else:
            visit(node, typing_only)

    visit(tree, False)
    return found


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, bool, int]]]:
    files = sorted(SIM.rglob("*.py"))
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {m: set() for m in known}
    edges = []
    for path in files:
        here = module_name(path)
        for target, typing_only, line in imports_of(path, known):
            if target == "sim" or target == here:
                continue
            while target not in known:  # "from sim.x.y import z" where y is not a module
                target = target.rpartition(".")[0]
            edges.append((here, target, typing_only, line))
            if not typing_only:
                graph[here].add(target)
    return graph, edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_imports_point_down_the_layers():
    _, edges = import_graph()
    against = [f"{src}:{line} imports {dst}" + (" (TYPE_CHECKING)" if typing_only else "")
               for src, dst, typing_only, line in edges
               if src != "sim" and layer_of(dst) > layer_of(src)]
    assert against == []


def test_every_module_has_a_layer():
    for path in SIM.rglob("*.py"):
        name = module_name(path)
        if name != "sim":
            layer_of(name)


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_circles(source, expected):
    assert cycles(source) == expected


def test_the_reader_sees_imports_inside_functions_and_type_checking(tmp_path, monkeypatch):
    pkg = tmp_path / "sim"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "__init__.py").write_text("")
    (pkg / "config.py").write_text("")
    (pkg / "model" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sim.cli import x\n"
        "def f():\n    from . import b\n    from ..config import y\n")
    (pkg / "model" / "b.py").write_text("")
    (pkg / "cli.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "SIM", pkg)
    known = {"sim", "sim.config", "sim.cli", "sim.model", "sim.model.a", "sim.model.b"}
    assert sorted(imports_of(pkg / "model" / "a.py", known)) == [
        ("sim.cli", True, 3), ("sim.config", False, 6), ("sim.model.b", False, 5)]


def test_the_documented_layers_are_read_as_drawn():
    layers = dict(LAYERS)
    assert [name for name, _ in LAYERS][:3] == ["core", "config", "model"]
    assert layers["config"] == ("sim.config", "sim.console")
    assert layer_of("sim.model.resources.db") < layer_of("sim.telemetry.recorder") < layer_of("sim.cli")


def test_an_upward_import_is_reported(tmp_path, monkeypatch):
    pkg = tmp_path / "sim"
    (pkg / "model").mkdir(parents=True)
    for name in ("__init__.py", "model/__init__.py", "cli.py"):
        (pkg / name).write_text("")
    (pkg / "model" / "a.py").write_text("def f():\n    from sim.cli import main\n")
    monkeypatch.setattr(__import__(__name__), "SIM", pkg)
    _, edges = import_graph()
    assert [(s, d) for s, d, _, _ in edges if layer_of(d) > layer_of(s)] == [("sim.model.a", "sim.cli")]

"""Architecture rules, checked on the source (DESIGN.md "Rules every change keeps"):

* no import cycles among the modules under ``packages/*/src``, counting
  module-level and function-local imports alike (an import inside a function
  is still a dependency, only a later one), relative imports resolved, and
  ``if TYPE_CHECKING:`` blocks left out (they never run);
* pyrite-core imports no other pyrite distribution, and every distribution
  imports only the pyrite distributions its pyproject.toml depends on;
* no module under ``packages/`` is over 500 lines.

The import graph is built with ``ast`` from the files themselves, so a module
that is never imported by a test is checked too.  Imports made through
``importlib.import_module`` (the lazy package exports) are not import
statements and are not in the graph.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"
MAX_LINES = 500

# the leaf package of each folder, and the distribution the folder builds
DISTRIBUTIONS = {
    "core": "pyrite-core",
    "serializers": "pyrite-serializers",
    "transports": "pyrite-transports",
    "nameserver": "pyrite-nameserver",
    "api": "pyrite",
}


@dataclass(frozen=True)
class Import:
    """One import statement: who imports, what (a module name, resolved), where."""

    importer: str
    target: str
    path: Path
    line: int
    type_checking: bool

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Sources:
    """Every module under packages/*/src: name -> file, and the imports each one makes."""

    files: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)

    def graph(self) -> dict[str, dict[str, Import]]:
        """importer -> {imported module of this tree -> the first import that makes the edge};
        imports inside ``if TYPE_CHECKING:`` are left out."""
        edges: dict[str, dict[str, Import]] = {name: {} for name in self.files}
        for imp in self.imports:
            if imp.type_checking:
                continue
            target = self.known(imp.target)
            if target is not None and target != imp.importer:
                edges[imp.importer].setdefault(target, imp)
        return edges

    def known(self, name: str) -> str | None:
        """``name`` or its longest prefix that is a module of this tree (``import a.b.c`` of an
        attribute path), or None for a module from elsewhere."""
        while name:
            if name in self.files:
                return name
            name = name.rpartition(".")[0]
        return None


def module_name(path: Path) -> str:
    src = next(parent for parent in path.parents if parent.name == "src")
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, sources: Sources, module: str, path: Path) -> None:
        self.sources = sources
        self.module = module
        self.path = path
        # the package relative imports start from
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.type_checking = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.visit(node.test)
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, target: str, node: ast.stmt) -> None:
        self.sources.imports.append(Import(self.module, target, self.path, node.lineno, self.type_checking > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base_parts = self.package.split(".")
            if node.level > 1:
                base_parts = base_parts[: -(node.level - 1)]
            base = ".".join(base_parts)
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        for alias in node.names:
            # "from pkg import sub" imports the submodule pkg.sub when there is one
            sub = f"{target}.{alias.name}"
            self._add(sub if alias.name != "*" and sub in self.sources.files else target, node)


def collect_sources() -> Sources:
    sources = Sources()
    for path in sorted(PACKAGES.glob("*/src/**/*.py")):
        sources.files[module_name(path)] = path
    for name, path in sources.files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _ImportCollector(sources, name, path).visit(tree)
    return sources


@pytest.fixture(scope="module")
def sources() -> Sources:
    return collect_sources()


# ---------------------------------------------------------------- cycles


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def shortest_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of ``component``, as a closed path."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def describe_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> str:
    cycle = shortest_cycle(graph, component)
    steps = [f"{a} imports {b} ({graph[a][b].where()})" for a, b in zip(cycle, cycle[1:])]
    return f"import cycle among {{{', '.join(component)}}}: " + " -> ".join(cycle) + "\n      " + "\n      ".join(steps)


def test_no_import_cycles(sources: Sources) -> None:
    graph = sources.graph()
    cycles = [describe_cycle(graph, component) for component in strongly_connected(graph)]
    assert not cycles, f"{len(cycles)} import cycle(s) under packages/*/src:\n  " + "\n  ".join(cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    # the checker itself: a known graph with one 3-cycle and one 2-cycle, plus a tail
    def imp(a: str, b: str) -> Import:
        return Import(a, b, ROOT / "x.py", 1, False)

    graph: dict[str, dict[str, Import]] = {
        "a": {"b": imp("a", "b")},
        "b": {"c": imp("b", "c")},
        "c": {"a": imp("c", "a"), "d": imp("c", "d")},
        "d": {"e": imp("d", "e")},
        "e": {"d": imp("e", "d")},
        "f": {"a": imp("f", "a")},
    }
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert shortest_cycle(graph, ["d", "e"]) == ["d", "e", "d"]


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    # the collector itself, on a small tree: relative imports at two levels, a submodule
    # named in "from . import", a function-local import; a TYPE_CHECKING import is left out
    src = tmp_path / "src" / "pkg"
    (src / "sub").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "a.py").write_text("from . import b\nfrom .sub.c import thing\n")
    (src / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n"
        "else:\n    import json\n\ndef f():\n    from pkg.sub import c\n"
    )
    (src / "sub" / "__init__.py").write_text("")
    (src / "sub" / "c.py").write_text("from .. import a\nfrom ..b import f\n")
    sources = Sources()
    for path in sorted(tmp_path.glob("src/**/*.py")):
        sources.files[module_name(path)] = path
    for name, path in sources.files.items():
        _ImportCollector(sources, name, path).visit(ast.parse(path.read_text()))
    graph = sources.graph()
    assert set(graph["pkg.a"]) == {"pkg.b", "pkg.sub.c"}
    assert set(graph["pkg.b"]) == {"pkg.sub.c"}  # the TYPE_CHECKING import of pkg.a is not an edge
    assert set(graph["pkg.sub.c"]) == {"pkg.a", "pkg.b"}
    assert strongly_connected(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    skipped = [imp for imp in sources.imports if imp.type_checking]
    assert [(imp.importer, imp.target) for imp in skipped] == [("pkg.b", "pkg.a")]


# ---------------------------------------------------------------- distributions


def _distribution_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "pyrite":
        return DISTRIBUTIONS.get(parts[1], f"<unknown pyrite package pyrite.{parts[1]}>")
    return None


def _declared_pyrite_dependencies(folder: str) -> set[str]:
    with open(PACKAGES / folder / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() for r in requirements}  # type: ignore[union-attr]
    return {name for name in names if name in DISTRIBUTIONS.values()}


def _foreign_imports(sources: Sources, folder: str) -> list[str]:
    """Imports of pyrite distributions that ``folder``'s distribution does not depend on.

    TYPE_CHECKING imports count here: a type checker run on an install without
    the other distribution would fail on them."""
    own = DISTRIBUTIONS[folder]
    allowed = _declared_pyrite_dependencies(folder) | {own}
    bad = []
    for imp in sources.imports:
        if _distribution_of(imp.importer) != own:
            continue
        target = _distribution_of(imp.target)
        if target is not None and target not in allowed:
            kind = " (in a TYPE_CHECKING block)" if imp.type_checking else ""
            bad.append(f"{imp.importer} imports {imp.target} from {target} at {imp.where()}{kind}")
    return bad


def test_core_imports_no_other_pyrite_distribution(sources: Sources) -> None:
    assert _declared_pyrite_dependencies("core") == set()
    bad = _foreign_imports(sources, "core")
    assert not bad, "pyrite-core must be stdlib only:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("folder", [f for f in DISTRIBUTIONS if f != "core"])
def test_distributions_import_only_what_they_depend_on(sources: Sources, folder: str) -> None:
    bad = _foreign_imports(sources, folder)
    assert not bad, f"{DISTRIBUTIONS[folder]} imports distributions it does not depend on:\n  " + "\n  ".join(bad)


def test_every_source_module_is_in_the_graph(sources: Sources) -> None:
    # guards the glob: each distribution's leaf package is found, with its modules
    for folder in DISTRIBUTIONS:
        assert f"pyrite.{folder}" in sources.files, folder
    assert "pyrite.core.plugins" in sources.files
    assert all(name.startswith("pyrite.") for name in sources.files), sorted(sources.files)
    core_imports = {imp.target for imp in sources.imports if imp.importer == "pyrite.core.plugins"}
    assert "pyrite.core.errors" in core_imports  # a relative import, resolved


# ---------------------------------------------------------------- size


def test_no_module_over_500_lines() -> None:
    too_long = []
    for path in sorted(PACKAGES.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, f"modules over {MAX_LINES} lines under packages/:\n  " + "\n  ".join(too_long)

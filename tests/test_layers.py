"""The package's import structure: lower layers never import higher ones (the order of
CONTRIBUTING.md), and no module imports itself back through a chain of imports (a cycle), inside a
package or across packages, counting the imports inside functions that hide cycles at import time.

Imports are read from the source with :mod:`ast` (every ``import`` statement anywhere in a module,
relative ones resolved against the module's package), not from a running interpreter, so an import
inside a function counts as much as one at the top. ``from taskloss.x import y`` is an edge to the
module ``taskloss.x.y`` when that is a module, else to ``taskloss.x`` (its ``__init__``); the
implicit import of a module's parent packages is not an edge (Python resolves it before the
module's own code runs, so it cannot close a cycle of partially initialised modules).
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import taskloss

RANK = {"errors": 0, "config": 0, "validation": 0, "filters": 0, "locks": 0, "provenance": 0, "metrics": 1, "data": 1,
        "features": 2, "observers": 1, "losses": 3, "networks": 3, "baselines": 4, "training": 5, "report": 6,
        "studies": 7, "readers": 8, "cli": 9}
PACKAGE = Path(taskloss.__file__).parent
Graph = dict[str, set[str]]


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the package (``a/__init__.py`` is ``taskloss.a``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = ("taskloss", *path.relative_to(package).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that the module ``name`` (file ``path``) imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(name, is_package, node.module, node.level)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(_innermost_module(target, modules) for target in targets if target.startswith("taskloss"))
    found.discard(name)
    return found - {""}


def resolve_from(name: str, is_package: bool, module: str | None, level: int) -> str:
    """The absolute module of ``from <level dots><module> import ...`` written in module ``name``."""
    if level == 0:
        return module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _innermost_module(target: str, modules: set[str]) -> str:
    """The longest prefix of the dotted ``target`` that is a module ("" when none is)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return ""


def import_graph(package: Path = PACKAGE) -> Graph:
    """Module -> the package's modules it imports."""
    files = module_names(package)
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def strongly_connected(graph: Graph) -> Iterator[set[str]]:
    """The strongly connected components of ``graph`` (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    yield component
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])


def shortest_cycle(graph: Graph, start: str, within: set[str]) -> list[str]:
    """The shortest import path from ``start`` back to itself inside ``within`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & within):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no cycle of {sorted(within)}")


def import_cycles(graph: Graph) -> list[str]:
    """One line per cycle, ``a -> b -> a``: the shortest cycle through each module of each component
    of more than one module, each cycle once (rotated to start at its smallest module)."""
    cycles = set()
    for component in strongly_connected(graph):
        if len(component) == 1:
            continue
        for start in component:
            cycle = shortest_cycle(graph, start, component)[:-1]
            first = cycle.index(min(cycle))
            cycles.add(" -> ".join([*cycle[first:], *cycle[:first], cycle[first]]))
    return sorted(cycles)


def layer_violations(graph: Graph) -> list[str]:
    """``"a imports b"`` for each import of a higher layer than the importer's (RANK)."""
    violations = []
    for name, imported in sorted(graph.items()):
        layer = name.split(".")[1] if "." in name else "__init__"
        for target in sorted(imported - {"taskloss"}):  # the root holds only the version
            if RANK.get(target.split(".")[1], -1) > RANK.get(layer, len(RANK)):
                violations.append(f"{name} imports {target}")
    return violations


def test_no_module_imports_a_higher_layer():
    assert not layer_violations(import_graph())
    assert set(RANK) >= {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
                         if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())} - {"__init__"}


def test_no_import_cycle():
    """No cycle of imports anywhere in the package (the message lists each one as a path)."""
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles (imports inside functions included):\n" + "\n".join(cycles)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "taskloss" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "taskloss"


def test_cycles_are_found_through_function_imports_relative_imports_and_packages(tmp_path: Path):
    package = _write_package(tmp_path, {
        "__init__.py": "",
        "a/__init__.py": "from taskloss.a.one import f\n",
        "a/one.py": "def f():\n    from . import two\n",
        "a/two.py": "from .one import f\n",                       # a.one <-> a.two, inside the package
        "b/__init__.py": "",
        "b/left.py": "import taskloss.c.right\n",
        "c/__init__.py": "",
        "c/right.py": "def g():\n    from ..b import left\n",    # b.left <-> c.right, across packages
        "d.py": "from taskloss.a import f\n",                     # into a's __init__ only: no cycle
    })
    graph = import_graph(package)
    assert graph["taskloss.a.two"] == {"taskloss.a.one"}
    assert graph["taskloss.c.right"] == {"taskloss.b.left"}
    assert graph["taskloss.d"] == {"taskloss.a"}
    assert import_cycles(graph) == [
        "taskloss.a.one -> taskloss.a.two -> taskloss.a.one",
        "taskloss.b.left -> taskloss.c.right -> taskloss.b.left",
    ]


def test_an_import_of_a_higher_layer_inside_a_function_is_a_violation(tmp_path: Path):
    package = _write_package(tmp_path, {
        "__init__.py": "", "metrics/__init__.py": "def f():\n    from ..losses import pixel\n",
        "losses/__init__.py": "", "losses/pixel.py": "from taskloss.metrics import f\n",
    })
    assert layer_violations(import_graph(package)) == ["taskloss.metrics imports taskloss.losses.pixel"]


def test_a_longer_cycle_is_reported_as_its_path(tmp_path: Path):
    package = _write_package(tmp_path, {
        "__init__.py": "", "x.py": "from taskloss import y\n", "y.py": "from taskloss import z\n",
        "z.py": "def h():\n    import taskloss.x\n", "w.py": "import taskloss.x\n",
    })
    assert import_cycles(import_graph(package)) == ["taskloss.x -> taskloss.y -> taskloss.z -> taskloss.x"]


@pytest.mark.parametrize(("name", "is_package", "module", "level", "expected"), [
    ("taskloss.a.b", False, "c", 1, "taskloss.a.c"),
    ("taskloss.a.b", False, None, 2, "taskloss"),
    ("taskloss.a", True, "c", 1, "taskloss.a.c"),
    ("taskloss.a", True, "d", 2, "taskloss.d"),
    ("taskloss.a.b", False, "taskloss.x", 0, "taskloss.x"),
])
def test_relative_imports_resolve_against_the_package(name, is_package, module, level, expected):
    assert resolve_from(name, is_package, module, level) == expected

"""Each name of :mod:`taskloss.studies` is defined once: no top-level name in two of its modules, and no
import of taskloss inside a function (the way an import cycle hides)."""

import ast
from pathlib import Path

import taskloss.studies

FOLDER = Path(taskloss.studies.__file__).parent
MODULES = sorted(FOLDER.glob("*.py"))


def top_level_names(tree: ast.Module) -> list[str]:
    """Names a module's body defines: functions, classes and assigned (or annotated) names."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def test_top_level_names_finds_every_kind_of_definition():
    tree = ast.parse("A = 1\nB: int = 2\ndef f(): pass\nclass C: pass\nimport os\nfrom x import y\nf()\n")
    assert top_level_names(tree) == ["A", "B", "f", "C"]


def test_no_top_level_name_is_defined_in_two_modules_of_studies():
    assert len(MODULES) > 10
    defined: dict[str, list[str]] = {}
    for path in MODULES:
        for name in top_level_names(ast.parse(path.read_text())):
            defined.setdefault(name, []).append(path.name)
    twice = {name: modules for name, modules in defined.items() if len(modules) > 1}
    assert twice == {}


def test_no_function_of_studies_imports_taskloss():
    inside = []
    for path in MODULES:
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                inside += [f"{path.name}:{node.lineno} {m}" for m in modules if m.split(".")[0] == "taskloss"]
    assert inside == []

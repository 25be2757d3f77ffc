"""Lower layers never import higher ones (the order of CONTRIBUTING.md)."""

import re
from pathlib import Path

import taskloss

RANK = {"errors": 0, "config": 0, "validation": 0, "filters": 0, "locks": 0, "provenance": 0,
        "metrics": 1, "data": 1, "observers": 1, "features": 2, "losses": 3, "networks": 3, "baselines": 4,
        "training": 5, "report": 6, "studies": 7, "readers": 8, "cli": 9}
IMPORT = re.compile(r"^\s*(?:from|import) taskloss\.(\w+)", re.MULTILINE)


def test_no_module_imports_a_higher_layer():
    package = Path(taskloss.__file__).parent
    violations = []
    for path in package.rglob("*.py"):
        layer = path.relative_to(package).parts[0].removesuffix(".py")
        for imported in IMPORT.findall(path.read_text()):
            if RANK.get(imported, -1) > RANK.get(layer, len(RANK)):
                violations.append(f"{path.relative_to(package)} imports taskloss.{imported}")
    assert not violations
    assert set(RANK) >= {p.name.removesuffix(".py") for p in package.iterdir()
                         if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())} - {"__init__"}

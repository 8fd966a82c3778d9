"""The layout is the architecture: each package imports only the packages below it, and none
of the tool's packages imports tests/ (README, "Layout").

    hooks/, models/  <-  metrics/  <-  experiments/  <-  report/  <-  plugin/  <-  claims/, examples/
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = [("hooks", "models"), ("metrics",), ("experiments",), ("report",), ("plugin",), ("claims", "examples")]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
ALLOWED_SIDEWAYS = {("models", "hooks")}        # models/ may read hooks' layout of a family


def imports(path: Path) -> set:
    """The repository's top-level packages a module imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & (set(RANK) | {"tests"})


@pytest.mark.parametrize("package", sorted(RANK))
def test_a_package_imports_only_the_layers_below_it_and_never_tests(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for other in imports(path):
            if other == "tests" or (RANK[other] > RANK[package]) or (
                    RANK[other] == RANK[package] and other != package and (package, other) not in ALLOWED_SIDEWAYS):
                wrong.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not wrong, wrong

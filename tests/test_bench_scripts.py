"""The benchmarks import the product and the lab by name but run only under `make bench`; a
rename would otherwise break them silently. Each name they import from our own packages must
exist (third-party imports such as the bench-only `pesq` are not checked here)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUR_PACKAGES = ("vomp", "hw", "firmware", "lab", "vmbench", "image")
SCRIPTS = sorted((REPO / "bench").glob("*.py"))


def our_imports(script: Path) -> list[tuple[str, str | None]]:
    """(module, name) for each `from module import name` and (module, None) for each `import
    module` of our packages in `script`."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in OUR_PACKAGES:
                found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(
                (alias.name, None)
                for alias in node.names
                if alias.name.split(".")[0] in OUR_PACKAGES
            )
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_name_a_benchmark_imports_from_our_packages_exists(script: Path) -> None:
    missing = []
    for module_name, name in our_imports(script):
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"{script.name} imports names that do not exist: {missing}"

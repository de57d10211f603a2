"""The sans-IO rule, checked: nothing in vomp/ may touch sockets, threads, sleeps or clocks."""

import ast
from pathlib import Path

VOMP = Path(__file__).resolve().parent.parent / "vomp"
FORBIDDEN_MODULES = {"socket", "threading", "asyncio", "time", "select", "selectors", "datetime"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_vomp_imports_no_io_or_clock_modules():
    offenders = {
        str(path.relative_to(VOMP)): sorted(_imported_modules(path) & FORBIDDEN_MODULES)
        for path in VOMP.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}

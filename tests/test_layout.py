"""The layout rules, checked on the source: which package may import which, and the sans-IO rule.

vomp/        the protocol and the call media: no sockets, threads, clocks or files
vomp/media/  may use the protocol modules; they do not use it
hw/          device edges: may use vomp, never firmware
firmware/    the daemon: may use both
lab/         the test lab: no product package imports it
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("vomp", "hw", "firmware")

NO_IO_MODULES = {"socket", "threading", "asyncio", "time", "select", "selectors", "datetime"}
FILE_MODULES = {"pathlib", "tempfile", "shutil", "glob", "fcntl", "mmap", "io"}
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "mkdir"}
OS_FILE_CALLS = {
    "open",
    "read",
    "write",
    "replace",
    "rename",
    "remove",
    "unlink",
    "fsync",
    "fchmod",
    "chmod",
    "mkdir",
    "makedirs",
    "rmdir",
    "listdir",
    "scandir",
}


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Every module `path` imports, as an absolute dotted name (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_of(package: str, forbidden: str) -> dict[str, list[str]]:
    """For each file of `package`, the imports that name `forbidden` or a module inside it."""
    offenders = {}
    for path in sources(package):
        hits = sorted(
            m for m in imported_modules(path) if m == forbidden or m.startswith(forbidden + ".")
        )
        if hits:
            offenders[str(path.relative_to(REPO))] = hits
    return offenders


def file_io_calls(path: Path) -> Iterator[str]:
    """Calls in `path` that reach the file system: open(), Path.read_text() & co, os.replace()."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            yield f"line {node.lineno}: open()"
        elif isinstance(func, ast.Attribute):
            receiver = func.value
            if isinstance(receiver, ast.Name) and receiver.id == "os":
                if func.attr in OS_FILE_CALLS:
                    yield f"line {node.lineno}: os.{func.attr}()"
            elif func.attr in FILE_CALLS:
                yield f"line {node.lineno}: .{func.attr}()"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("vomp", "hw"),
        ("vomp", "firmware"),
        ("hw", "firmware"),
        *((package, "lab") for package in PRODUCT),
        *((package, "tests") for package in PRODUCT),
    ],
)
def test_imports_point_from_the_edges_inwards(package, forbidden):
    assert imports_of(package, forbidden) == {}


def test_the_protocol_modules_do_not_import_the_call_media():
    protocol = [p for p in sources("vomp") if "media" not in p.relative_to(REPO / "vomp").parts]
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m for m in imported_modules(path) if m.startswith("vomp.media")
        )
        for path in protocol
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_vomp_imports_no_io_clock_or_file_modules():
    offenders = {
        str(path.relative_to(REPO)): sorted(
            {m.split(".")[0] for m in imported_modules(path)} & (NO_IO_MODULES | FILE_MODULES)
        )
        for path in sources("vomp")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_vomp_does_no_file_io():
    offenders = {str(p.relative_to(REPO)): list(file_io_calls(p)) for p in sources("vomp")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checks_see_what_they_look_for(tmp_path):
    """The rules above would catch a violation (they are not vacuously green)."""
    sample = tmp_path / "vomp" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(
        "import os\nfrom pathlib import Path\nfrom . import media\nfrom hw.mesh import x\n"
        "def f(p):\n    os.replace(p, p)\n    Path(p).write_text('')\n    open(p)\n"
        "    return 'a'.replace('a', 'b')\n"
    )
    modules = imported_modules(sample, root=tmp_path)
    assert {"pathlib", "vomp.media", "hw.mesh.x"} <= modules
    assert [call.split(": ")[1] for call in file_io_calls(sample)] == [
        "os.replace()",
        ".write_text()",
        "open()",
    ]

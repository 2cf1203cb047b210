"""The sans-IO core imports only the pure stdlib (STYLE.md section 1): checked with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"
MODULES = sorted(PROTOCOL_DIR.glob("*.py"))
FORBIDDEN_ROOTS = {"django", "channels", "asyncio", "time", "random", "os", "uuid"}
ALLOWED_ROOTS = {
    "__future__",
    "base64",
    "binascii",
    "collections",
    "dataclasses",
    "enum",
    "json",
    "orjson",  # a codec without I/O: the relay path's JSON encoder (issue #12)
    "typing",
}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            assert node.module is not None
            names.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            names.append("__import__")
    return names


def test_protocol_package_has_the_expected_modules() -> None:
    # given / when
    names = {path.name for path in MODULES}
    # then
    assert {
        "__init__.py",
        "errors.py",
        "engineio.py",
        "socketio.py",
        "session.py",
    } <= names


@pytest.mark.parametrize("path", MODULES, ids=[path.name for path in MODULES])
def test_protocol_module_imports_nothing_forbidden(path: Path) -> None:
    # given
    modules = imported_modules(path)
    # when
    roots = {name.split(".")[0] for name in modules}
    # then
    assert roots & FORBIDDEN_ROOTS == set()
    assert "__import__" not in modules
    for name in modules:
        if name.split(".")[0] == "signaling":
            assert name.startswith("signaling.protocol."), f"{path.name} imports {name}"
        else:
            assert name.split(".")[0] in ALLOWED_ROOTS, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=[path.name for path in MODULES])
def test_protocol_module_starts_with_a_docstring(path: Path) -> None:
    # given
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # when
    docstring = ast.get_docstring(tree)
    # then
    assert docstring is not None
    assert "Never imports" in docstring

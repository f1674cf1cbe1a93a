"""The compiled build's module list, and the rules that keep a compiled build behaving as the
pure one does, checked from the source (so a pure run catches them before any compile)."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from sidecar.build_kind import COMPILED, COMPILED_MODULES, PURE, build_kind

SIDECAR = Path(__file__).resolve().parents[2] / "sidecar"

#: GCC keywords spelled with two leading underscores: mypyc names the C field of attribute
#: ``_x`` ``__x``, so an attribute ``_thread`` or ``_inline`` does not compile
_C_KEYWORDS = {"thread", "inline", "asm", "restrict", "volatile", "const", "signed", "typeof"}


def _source(module: str) -> Path:
    path = SIDECAR.parent / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _tree(module: str) -> ast.Module:
    return ast.parse(_source(module).read_text())


def test_every_compiled_module_exists_and_says_why() -> None:
    """The list names real modules, each with its reason, and never the module holding it."""
    for module, reason in COMPILED_MODULES.items():
        assert _source(module).is_file(), module
        assert reason.strip(), module
    assert "sidecar.build_kind" not in COMPILED_MODULES


def test_no_hook_implementation_is_compiled() -> None:
    """pluggy marks a hook implementation with an attribute a compiled function cannot carry:
    a plugin module registering hooks stays Python."""
    for module in COMPILED_MODULES:
        assert "hookimpl" not in _source(module).read_text(), module


def test_no_python_class_subclasses_a_compiled_one() -> None:
    """A class compiled with mypyc cannot be subclassed by interpreted code: no Python source
    left as such (the sidecar's, its tests', the plugins') subclasses a compiled class."""
    compiled_classes = {
        node.name
        for module in COMPILED_MODULES
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.ClassDef)
    }
    compiled_files = {_source(module) for module in COMPILED_MODULES}
    root = SIDECAR.parent
    for path in [
        *SIDECAR.rglob("*.py"),
        *(root / "tests").rglob("*.py"),
        *(root / "plugins").rglob("*.py"),
    ]:
        if path in compiled_files or "v1" in path.parts or path.name.endswith("_pb2.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                assert not bases & compiled_classes, f"{path.relative_to(root)}: {node.name}"


def test_no_compiled_attribute_collides_with_a_c_keyword() -> None:
    """``self._thread`` compiles to a C field ``__thread``, a keyword: such names are refused."""
    pattern = re.compile(r"\bself\._(" + "|".join(_C_KEYWORDS) + r")\b")
    for module in COMPILED_MODULES:
        assert not pattern.search(_source(module).read_text()), module


def test_no_compiled_class_aliases_a_method() -> None:
    """``name = Base.method`` in a class body is a plain function in a compiled class, called
    without ``self``: compiled classes define a method instead."""
    for module in COMPILED_MODULES:
        for cls in ast.walk(_tree(module)):
            if not isinstance(cls, ast.ClassDef):
                continue
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Attribute):
                    assert (
                        not isinstance(stmt.value.value, ast.Name)
                        or not stmt.value.value.id[:1].isupper()
                    ), f"{module}.{cls.name}"


def test_the_build_running_is_the_one_expected() -> None:
    """CI says which build it installed (``SIDECAR_EXPECT_BUILD``): a compiled run that fell
    back to Python source fails here instead of passing unnoticed."""
    expected = os.environ.get("SIDECAR_EXPECT_BUILD")
    assert build_kind() in {COMPILED, PURE}
    if expected:
        assert build_kind() == {"compiled": COMPILED, "pure": PURE}[expected]

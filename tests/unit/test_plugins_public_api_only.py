"""plugins/* and the examples of docs/plugins.md use the public plugin API and nothing else.

A plugin imports from ``sidecar`` itself, only names in ``sidecar.__all__``, and its tests also
from ``sidecar.testing``. A module under ``sidecar`` (``sidecar.config.types``,
``sidecar.filters``...) is the sidecar's own and may change in any release, so the worked example
and the guide must never teach reaching into one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sidecar

from ..integration.doc_blocks import code_blocks

ROOT = Path(__file__).resolve().parents[2]
DOC = "docs/plugins.md"
#: what a plugin (or its tests) may import besides the names of ``sidecar.__all__``
ALSO_ALLOWED = {"sidecar.testing"}


def private_uses(source: str, where: str) -> list[str]:
    """Each import or attribute of ``source`` that reaches past the public API, as
    ``where:line: what``."""
    public = set(sidecar.__all__)
    found: list[str] = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sidecar.") and alias.name not in ALSO_ALLOWED:
                    bad(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sidecar":
                for alias in node.names:
                    if alias.name not in public and f"sidecar.{alias.name}" not in ALSO_ALLOWED:
                        bad(node, f"from sidecar import {alias.name} (not in sidecar.__all__)")
            elif node.module.startswith("sidecar.") and node.module not in ALSO_ALLOWED:
                bad(node, f"from {node.module} import ...")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sidecar"
            and node.attr not in public
            and f"sidecar.{node.attr}" not in ALSO_ALLOWED
        ):
            bad(node, f"sidecar.{node.attr}")
    return found


def hello_sources() -> list[Path]:
    return sorted((ROOT / "plugins" / "hello").rglob("*.py"))


def plugin_sources() -> list[Path]:
    """Every Python file of every distribution under plugins/ (each is a third party's)."""
    return sorted(p for p in (ROOT / "plugins").rglob("*.py") if "build" not in p.parts)


def test_the_sources_checked_are_there() -> None:
    """The plugin's module, its tests and the doc's examples are all found and checked."""
    names = {p.relative_to(ROOT / "plugins" / "hello").as_posix() for p in hello_sources()}
    assert "sidecar_hello/__init__.py" in names
    assert any(n.startswith("tests/test_") for n in names)
    assert len([b for b in code_blocks(DOC) if b.lang == "python"]) >= 5


@pytest.mark.parametrize("path", plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_plugin_imports_only_the_public_api(path: Path) -> None:
    """Every plugin under plugins/ imports from `sidecar` (and `sidecar.testing`) only."""
    assert private_uses(path.read_text(), str(path.relative_to(ROOT))) == []


def test_every_example_of_the_guide_imports_only_the_public_api() -> None:
    """No Python block of docs/plugins.md imports a module under `sidecar` but `testing`."""
    found = [
        use
        for block in code_blocks(DOC)
        if block.lang == "python"
        for use in private_uses(block.text, block.where)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("from sidecar.config.types import Duration", True),
        ("import sidecar.filters.retry", True),
        ("from sidecar import ORDER_DEFAULT", True),  # in sidecar.api.phases, not the API
        ("import sidecar\nx = sidecar.errors.CredentialsUnavailable", True),
        ("from sidecar import Phase, hookimpl", False),
        ("from sidecar.testing import make_exchange", False),
        ("import sidecar\nx = sidecar.API_VERSION", False),
        ("from sidecar_hello import HelloConfig", False),
    ],
)
def test_the_check_tells_public_from_private(source: str, refused: bool) -> None:
    """The check itself: a submodule or a name outside `sidecar.__all__` is refused."""
    assert bool(private_uses(source, "<example>")) is refused

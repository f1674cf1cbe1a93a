"""The plugin is proof that the public plugin API is enough: it imports from ``sidecar`` only
names in ``sidecar.__all__`` (its tests also ``sidecar.testing``), never a module under it."""

from __future__ import annotations

import ast
from pathlib import Path

import sidecar

PLUGIN = Path(__file__).resolve().parents[2]


def reaches_past_the_api(path: Path) -> list[str]:
    """Each import in ``path`` of a private sidecar module or name, as ``file:line: what``."""
    public, found = set(sidecar.__all__), []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [a.name for a in node.names]
            if node.module == "sidecar":
                found += [f"{path}:{node.lineno}: {n}" for n in names if n not in public]
            elif node.module.startswith("sidecar.") and node.module != "sidecar.testing":
                found.append(f"{path}:{node.lineno}: {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path}:{node.lineno}: {a.name}"
                for a in node.names
                if a.name.startswith("sidecar.") and a.name != "sidecar.testing"
            ]
    return found


def test_the_plugin_and_its_tests_use_only_the_public_api() -> None:
    """No module of sidecar_llm or its tests imports a private sidecar module or name."""
    sources = sorted(PLUGIN.rglob("*.py"))
    assert any(p.name == "adapter.py" for p in sources)
    assert [bad for p in sources for bad in reaches_past_the_api(p)] == []


def test_the_check_catches_a_private_import(tmp_path: Path) -> None:
    """The check itself: a submodule import or a name outside ``sidecar.__all__`` is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from sidecar.config.types import Size\nfrom sidecar import Metrics\n")
    assert len(reaches_past_the_api(bad)) == 2

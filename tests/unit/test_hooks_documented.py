"""Every hook a plugin can implement is documented where plugin authors look (datasette)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from sidecar.api import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def declared_hooks() -> dict[str, pluggy.HookCaller]:
    """The hooks exactly as pluggy reads them from ``sidecar/hookspecs.py``."""
    pm = pluggy.PluginManager("sidecar")
    pm.add_hookspecs(hookspecs)
    return {
        name: caller
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.has_spec()
    }


HOOKS = declared_hooks()


def test_the_hooks_this_core_relies_on_are_declared() -> None:
    """The core's registration hooks exist (so the checks below cannot pass on an empty list)."""
    assert {
        "sidecar_declare_config",
        "sidecar_register_adapters",
        "sidecar_register_filters",
        "sidecar_register_lifespans",
        "sidecar_register_admin_routes",
        "sidecar_rescue",
    } <= set(HOOKS)
    assert all(name.startswith("sidecar_") for name in HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_in_docs(name: str) -> None:
    """A plugin author finds every hook in docs/ (add a section when you add a hook)."""
    pages = sorted(DOCS.glob("*.md"))
    assert pages, f"no documentation in {DOCS}"
    where = [p.name for p in pages if re.search(rf"\b{name}\b", p.read_text())]
    assert where, f"hook {name} is declared in sidecar/hookspecs.py but no page in docs/ names it"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hookspec_says_when_it_runs_its_params_and_whether_it_stops_at_first_result(
    name: str,
) -> None:
    """Each hookspec's docstring says when it is called, each parameter, and its result rule."""
    spec = HOOKS[name].spec
    assert spec is not None
    doc = inspect.getdoc(spec.function) or ""
    assert "When:" in doc, f"{name}: say when the hook is called"
    for param in spec.argnames:
        assert f":param {param}:" in doc, f"{name}: document parameter {param!r}"
    if spec.opts.get("firstresult"):
        assert "Stops at the first" in doc, f"{name}: say it stops at the first result"
    else:
        assert "Every implementation is called" in doc, f"{name}: say all implementations run"

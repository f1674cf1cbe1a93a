"""Any part of the sidecar can be imported first: no import cycle depends on who came first.

The layers (tests/unit/test_layers.py) keep imports pointing down; this checks what that
protects, in a fresh interpreter: each package, and each module of the two lowest shared layers
(config and the plugin API, where a cycle once ran config -> loader -> auth -> config), imported
with nothing of the sidecar loaded before it.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import sidecar

FIRSTS = sorted(
    m.name
    for m in pkgutil.walk_packages(sidecar.__path__, "sidecar.")
    if m.ispkg or m.name.startswith(("sidecar.config.", "sidecar.api."))
)

PROBE = """
import importlib, json, sys
failed = []
for name in json.loads(sys.argv[1]):
    for loaded in [k for k in sys.modules if k == "sidecar" or k.startswith("sidecar.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(json.dumps(failed))
"""


def test_every_package_and_low_layer_module_imports_first_in_a_fresh_interpreter() -> None:
    """``import sidecar.config`` (or ``sidecar.api``, ``sidecar.auth``...) works on its own."""
    assert "sidecar.config.loader" in FIRSTS and "sidecar.auth" in FIRSTS
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(FIRSTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout) == []

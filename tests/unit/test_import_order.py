"""Any part of the sidecar can be imported first: no import cycle depends on who came first.

The layers (tests/unit/test_layers.py) keep imports pointing down; this checks what that
protects: each package, and each module of the two lowest shared layers (config and the plugin
API, where a cycle once ran config -> loader -> auth -> config), imported with nothing of the
sidecar loaded before it: a child process forked per name from one with no sidecar module in
it (removing modules from ``sys.modules`` instead would not reset compiled ones, whose
extension stays initialised).
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
import importlib, json, os, sys
# what the sidecar imports from elsewhere, loaded once here, so each forked child pays only
# for the sidecar's own modules (children start from this process: no sidecar module in it)
for dep in ("pydantic", "aiohttp", "aiohttp.web", "yaml", "pluggy", "prometheus_client"):
    try:
        importlib.import_module(dep)
    except ImportError:
        pass
assert not [k for k in sys.modules if k == "sidecar" or k.startswith("sidecar.")]
failed = []
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a fresh start for this one name: nothing of the sidecar imported yet
        os.close(read)
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException as e:
            os.write(write, f"{name}: {type(e).__name__}: {e}".encode()[:4000])
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        message = r.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(message or f"{name}: the import process ended with status {status}")
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

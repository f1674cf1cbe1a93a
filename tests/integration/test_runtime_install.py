"""The README's first command on a runtime-only install: no test extra, a fresh venv.

The suite itself runs in a venv that also holds the test tools, so a module that only the test
extra pulls in (once, ``h2`` for the default gRPC front) would import fine here and crash every
real install. These tests build a second venv with ``scripts/setup`` and no ``--test`` (exactly
what ``./scripts/run`` does), import every module of the package from it, and then run
``./scripts/run`` itself against that venv: it must start on the embedded default, answer the
README's echo call, and exit 0 on SIGTERM.

The one module left out of the import check is :mod:`sidecar.testing`: it is the pytest plugin
for plugin authors' tests and needs pytest, which a runtime install does not have.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the embedded default's ports, which the README's first command uses
DEFAULT_PORTS = (15000, 15001, 15002)

IMPORT_ALL = """
import importlib, pkgutil, sys
import sidecar
names = [m.name for m in pkgutil.walk_packages(sidecar.__path__, "sidecar.")]
skipped = {"sidecar.testing"}
for name in names:
    if name not in skipped:
        importlib.import_module(name)
print(len(names) - len(skipped))
"""


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    env = {**os.environ, "SIDECAR_VENV": str(venv), "PYTHON": sys.base_prefix + "/bin/python3"}
    done = subprocess.run(
        [str(ROOT / "scripts" / "setup")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"scripts/setup failed:\n{done.stdout}\n{done.stderr}"
    yield venv


def test_the_runtime_install_has_no_test_tool(runtime_venv: Path) -> None:
    """The venv under test really is runtime-only: pytest and the other test tools are absent."""
    done = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", "import pytest"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "No module named 'pytest'" in done.stderr


def test_every_module_imports_from_a_runtime_only_install(runtime_venv: Path) -> None:
    """A dependency missing from `[project].dependencies` fails here, not in a user's pod."""
    done = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", IMPORT_ALL],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",  # import the installed package, never the source tree by accident
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 50  # the walk found the package's modules


PLUGINS_IMPORT = """
import importlib, json, pkgutil
from importlib.metadata import entry_points
found = {}
for ep in entry_points(group="sidecar"):
    module = ep.load()
    names = [m.name for m in pkgutil.walk_packages(module.__path__, module.__name__ + ".")]
    for name in names:
        importlib.import_module(name)
    found[ep.name] = len(names)
print(json.dumps(found))
"""


def test_every_plugin_in_the_repository_is_installed_and_imports_without_test_tools(
    runtime_venv: Path,
) -> None:
    """The set-up installs each distribution under plugins/ (so `adapter: llm` works on the
    README's first command), and none needs a test-only dependency to load."""
    done = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", PLUGINS_IMPORT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    wanted = {  # each distribution's entry-point names (plugins/aws-sigv4 is aws_sigv4)
        name
        for p in (ROOT / "plugins").glob("*/pyproject.toml")
        for name in tomllib.loads(p.read_text())["project"]["entry-points"]["sidecar"]
    }
    assert {"llm", "aws_sigv4"} <= wanted and wanted <= set(found), found


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback)
            return r.status, r.read()
    except OSError:
        return None


def test_the_readmes_first_command_serves_the_echo_call_and_stops_on_sigterm(
    runtime_venv: Path,
) -> None:
    """`./scripts/run` on a runtime-only install answers the README's first call, exits 0."""
    busy = [p for p in DEFAULT_PORTS if not _free(p)]
    assert not busy, f"ports {busy} are taken: stop what holds them (a sidecar left running?)"
    env = {**os.environ, "SIDECAR_VENV": str(runtime_venv)}
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        answer = None
        while answer is None and time.monotonic() < deadline and proc.poll() is None:
            answer = _get("http://127.0.0.1:15001/echo/hello?x=1")
            if answer is None:
                time.sleep(0.1)  # polling for the port to open, bounded by the deadline
        assert answer is not None, f"no answer on :15001 (exit {proc.poll()})"
        status, body = answer
        doc = json.loads(body)
        assert status == 200
        assert (doc["upstream"], doc["path"], doc["query"]) == ("echo", "/hello", "x=1")
        assert doc["headers"]["x-sidecar-demo"] == "injected-by-sidecar"
        ready = _get("http://127.0.0.1:15000/readyz")
        assert ready is not None and ready[0] == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert '"msg": "stopped"' in err

"""The sidecar's build backend: setuptools', plus the choice between a compiled and a pure build.

A wheel (``pip wheel .``, ``pip install .``) compiles the modules listed in
``sidecar/build_kind.py`` with mypyc when it can; an editable install (``pip install -e .``) is
always pure Python, so the source tree stays what runs in development. :func:`compile_plan` is the
one place that decides, for this backend (which build requirements to ask for) and for
``setup.py`` (which extensions to build):

- ``SIDECAR_PURE=1``: pure Python, whatever else is true;
- no C compiler or no ``Python.h`` (or not CPython): pure Python, said on stderr;
- ``SIDECAR_COMPILE=1``: compiled or the build fails (CI and the container image, so a missing
  compiler never ships a pure build by surprise).

A compiled build asks for mypy (mypyc ships with it, pinned: another version generates other
code) and the project's own dependencies, because mypyc type-checks the whole package and
compiles what it infers: a dependency missing at build time would make its types ``Any``.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - the rest of the backend is setuptools'

#: mypy (and its mypyc) used to compile; raise it deliberately, then rebuild and re-test.
MYPYC_REQUIREMENT = "mypy==2.4.1"
#: stubs the type check needs beyond the runtime dependencies (as the test extra has them)
STUB_REQUIREMENTS = ["types-PyYAML"]

_ROOT = Path(__file__).resolve().parent.parent


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def compile_plan() -> tuple[bool, str]:
    """``(compile?, why not)``: whether this build compiles, and if not, the reason to print."""
    if flag("SIDECAR_PURE"):
        return False, "SIDECAR_PURE is set"
    if platform.python_implementation() != "CPython":
        return _refuse(f"mypyc needs CPython, not {platform.python_implementation()}")
    # the compiler setuptools will run: $CC, else the one Python was built with
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return _refuse(f"no C compiler ({cc}) on PATH")
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        return _refuse(f"no Python.h in {include} (install the Python headers)")
    return True, ""


def _refuse(reason: str) -> tuple[bool, str]:
    if flag("SIDECAR_COMPILE"):
        raise RuntimeError(f"SIDECAR_COMPILE is set but the build cannot compile: {reason}")
    return False, reason


def compile_requirements() -> list[str]:
    """What a compiled build installs before ``setup.py`` runs: mypy, stubs, the dependencies."""
    project = tomllib.loads((_ROOT / "pyproject.toml").read_text())["project"]
    return [MYPYC_REQUIREMENT, *STUB_REQUIREMENTS, *project["dependencies"]]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    base = list(_setuptools.get_requires_for_build_wheel(config_settings))
    compiling, _ = compile_plan()
    return base + compile_requirements() if compiling else base


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    # an editable install runs the source tree: extensions built next to it would shadow edits
    os.environ["SIDECAR_PURE"] = "1"
    print("sidecar: editable install, pure Python", file=sys.stderr)
    return str(_setuptools.build_editable(wheel_directory, config_settings, metadata_directory))

"""Builds the sidecar's wheel: setuptools with pyproject.toml's metadata, plus the mypyc
extensions of a compiled build (``build_support/sidecar_build.py`` decides when; the modules are
``COMPILED_MODULES`` in ``sidecar/build_kind.py``; docs/compiled-build.md says why)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "build_support"))

from sidecar_build import compile_plan, flag  # noqa: E402 - found through the line above


def compiled_module_paths() -> list[str]:
    """``COMPILED_MODULES`` as source paths, read without importing the package."""
    names = runpy.run_path(str(ROOT / "sidecar" / "build_kind.py"))["COMPILED_MODULES"]
    return [str(Path(*name.split("."))) + ".py" for name in names]


class BuildPyFresh(build_py):
    """Python files copied into ``build/lib`` with no extension left by an earlier build: the
    wheel packs that whole directory, so a compiled module's old ``.so`` would otherwise ship in
    a pure build (or beside a module no longer compiled) and be imported instead of the source."""

    def run(self) -> None:
        lib = Path(self.build_lib)
        for stale in [*lib.glob("sidecar__mypyc*"), *lib.glob("sidecar/**/*.so")]:
            stale.unlink()
        super().run()


class BuildExtOrPure(build_ext):
    """A compile that fails for want of a toolchain leaves a pure build (unless
    ``SIDECAR_COMPILE=1``): the wheel then simply holds no extension."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # CCompilerError, DistutilsExecError, a missing header...
            if flag("SIDECAR_COMPILE"):
                raise
            print(f"sidecar: compiling failed ({e}); building pure Python", file=sys.stderr)
            self.extensions = []
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)


#: the setup.py commands that build extensions; metadata and requirement queries (egg_info,
#: dist_info) run this file too, and need no minute-long mypyc run
_BUILDS = {"bdist_wheel", "build", "build_ext", "install"}


def ext_modules() -> list[Any]:
    if not _BUILDS.intersection(sys.argv[1:]):
        return []
    compiling, why_not = compile_plan()
    if not compiling:
        print(f"sidecar: pure Python build ({why_not})", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if flag("SIDECAR_COMPILE"):
            raise
        print("sidecar: pure Python build (mypy/mypyc not installed)", file=sys.stderr)
        return []

    print("sidecar: compiling the data path with mypyc", file=sys.stderr)
    return list(
        mypycify(
            compiled_module_paths(),
            opt_level="3",
            # one shared library named after the project, not a hash
            group_name="sidecar",
        )
    )


setup(ext_modules=ext_modules(), cmdclass={"build_py": BuildPyFresh, "build_ext": BuildExtOrPure})

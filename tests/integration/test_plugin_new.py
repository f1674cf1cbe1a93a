"""``sidecar plugin new`` for every kind: what it writes installs, passes its own tests, and
passes ruff and ``mypy --strict``; a bad name or an existing directory is refused.

The distributions are written into a temp dir, built by pip with the venv's setuptools
(offline: ``--no-deps --no-index --no-build-isolation``) and installed with ``--target`` into a
directory of their own, which only the processes started here see (``PYTHONPATH``): the venv is
never modified, so nothing outlives the test, even one killed before its teardown. Their tests
run in a ``pytest`` child process each, from the distribution's directory, as an author runs
them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.kit.cli import KINDS

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Child:
    """A child process started now and waited for later; its output goes to a file (a pipe
    nobody reads could fill and stall it)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.cmd, self.cwd, self.log = cmd, cwd, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our venv's tools on files we wrote
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self, timeout: float) -> str:
        """Its output once it exited 0 (bounded wait), or the test fails with it."""
        code = self.proc.wait(timeout)
        output = self.log.read_text(errors="replace")
        assert code == 0, f"{' '.join(self.cmd[:3])} in {self.cwd.name}:\n{output[-6000:]}"
        return output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass(frozen=True)
class Scaffolded:
    """The distributions written, by kind, and what runs on them (started all at once: the
    four test runs and mypy take a few CPU seconds each and mostly wait on imports)."""

    dirs: dict[str, Path]
    env: dict[str, str]
    test_runs: dict[str, Child]
    mypy: Child


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``cmd``; its output, or the test fails with it."""
    done = subprocess.run(  # noqa: S603 - our venv's tools on files we wrote
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(cmd[:3])} in {cwd.name}:\n{output[-6000:]}"
    return output


def checked_files(directory: Path) -> list[str]:
    """The package and tests of a written distribution (``sidecar-kit_x`` holds
    ``sidecar_kit_x``)."""
    return [str(directory / directory.name.replace("-", "_")), str(directory / "tests")]


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaffolded]:
    """One plugin of each kind written by the command, installed (one pip run for all), its
    tests and mypy started."""
    workdir = tmp_path_factory.mktemp("plugin-new")
    children: list[Child] = []
    try:
        dirs = {}
        for kind in KINDS:
            name = "kit_" + kind.replace("-", "_")
            dirs[kind] = workdir / f"sidecar-{name}"
            assert main(["plugin", "new", name, "--kind", kind, "--dir", str(dirs[kind])]) == 0
        site = workdir / "site"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        cmd += ["--no-build-isolation", "--target", str(site), *map(str, dirs.values())]
        run(cmd, workdir, dict(os.environ), timeout=120)
        for path in dirs.values():  # what the build left beside the sources
            shutil.rmtree(path / "build", ignore_errors=True)
            for info in path.glob("*.egg-info"):
                shutil.rmtree(info)
        path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        test_runs = {}
        for kind, directory in dirs.items():
            pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            log = workdir / f"pytest-{kind}.log"
            test_runs[kind] = Child(pytest_cmd, directory, env, log)
            children.append(test_runs[kind])
        # an editable install of the sidecar is found through an import hook mypy does not
        # run: point it at the source. The sidecar's own errors are its own mypy run's
        # business (followed silently here); the plugins' are reported. One run for all four
        # (their module names differ), with the generated pyproject's settings.
        mypy_env = {**env, "MYPYPATH": str(ROOT)}
        config = dirs["filter"] / "pyproject.toml"
        mypy_cmd = [str(BIN / "mypy"), "--config-file", str(config), "--follow-imports=silent"]
        mypy_cmd += ["--cache-dir", str(workdir / "mypy-cache")]
        mypy_cmd += [f for d in dirs.values() for f in checked_files(d)]
        mypy = Child(mypy_cmd, workdir, mypy_env, workdir / "mypy.log")
        children.append(mypy)
        yield Scaffolded(dirs, env, test_runs, mypy)
    finally:
        for child in children:
            child.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("kind", KINDS)
def test_the_written_plugin_passes_its_own_tests(scaffolded: Scaffolded, kind: str) -> None:
    """Installed, each kind's generated unit and running-sidecar tests pass as written."""
    out = scaffolded.test_runs[kind].output(timeout=180)
    summary = out.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= 6, summary
    assert not re.search(r"failed|skipped|error", summary), summary


def test_the_written_code_passes_ruff_and_mypy_strict(scaffolded: Scaffolded) -> None:
    """The package and tests of every kind pass ruff (lint and format, each file under its
    own pyproject's settings) and mypy --strict."""
    files = [f for d in scaffolded.dirs.values() for f in checked_files(d)]
    cwd = next(iter(scaffolded.dirs.values())).parent
    ruff = str(BIN / "ruff")
    run([ruff, "check", "--no-cache", *files], cwd, scaffolded.env, timeout=60)
    run([ruff, "format", "--check", "--no-cache", *files], cwd, scaffolded.env, timeout=60)
    out = scaffolded.mypy.output(timeout=300)
    assert "Success: no issues found in 12 source files" in out, out


@pytest.mark.parametrize(
    "name",
    ["Shop", "shop-tags", "1shop", "shop__tags", "shop_", "a" * 41, "", "sh op", "shöp"],
)
def test_a_name_that_cannot_be_a_plugin_s_is_refused_and_nothing_is_written(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name that is not lowercase words joined by '_' is refused with exit 1, saying what a
    name may be, and nothing is written."""
    target = tmp_path / "out"
    assert main(["plugin", "new", name, "--kind", "filter", "--dir", str(target)]) == 1
    assert "lowercase letters, digits and single '_'" in capsys.readouterr().err
    assert not target.exists()


def test_an_existing_directory_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory that holds anything is refused (exit 1) and left exactly as it was."""
    target = tmp_path / "mine"
    target.mkdir()
    (target / "README.md").write_text("my own\n")
    assert main(["plugin", "new", "tags", "--kind", "filter", "--dir", str(target)]) == 1
    assert "exists and is not empty: nothing was overwritten" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["README.md"]
    assert (target / "README.md").read_text() == "my own\n"


def test_a_built_in_s_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin named like a built-in of its kind could never load (names are owned): refused."""
    target = tmp_path / "echo"
    assert main(["plugin", "new", "echo", "--kind", "adapter", "--dir", str(target)]) == 1
    assert "a built-in adapter is named 'echo'" in capsys.readouterr().err
    assert not target.exists()

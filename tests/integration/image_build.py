"""The container image the integration tests run: built once per test session, shared.

``scripts/build-image`` builds it (layers and the stand-in base cached between runs on one
machine); a build that fails or runs past :data:`BUILD` fails the tests that need it. The
``podman`` and ``image`` fixtures are offered to every integration module by ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .podman_cli import Podman

ROOT = Path(__file__).resolve().parents[2]
#: the source tree the image is built from: this checkout, or the one the compiled-build run
#: copied the tests from (its own tree links sidecar/ to an installed package)
SOURCE = Path(os.environ.get("SIDECAR_SOURCE_TREE") or ROOT)
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"localhost/sidecar:{VERSION}"
#: Bound (seconds) on the build: the first one on a machine also builds the base.
BUILD = 1080.0


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    p = Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield p
    finally:
        p.remove_all()


def wait_for_prebuild() -> None:
    """``scripts/test`` starts ``scripts/build-image`` before this run (its path
    ``SIDECAR_IMAGE_PREBUILD`` appears, holding its exit status, when it ends): wait for it, so
    that the build below reuses its layers instead of racing it. Its failure is not judged
    here: the build below fails the same way, with podman's words."""
    marker = os.environ.get("SIDECAR_IMAGE_PREBUILD")
    if not marker:
        return
    deadline = time.monotonic() + BUILD
    while not Path(marker).exists():
        if time.monotonic() > deadline:
            pytest.fail(f"scripts/build-image started by scripts/test ran past {BUILD}s")
        time.sleep(0.5)  # another process's build: nothing here to wait on but its file


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The image, built once per session by the script CI uses (layers cached between runs)."""
    wait_for_prebuild()
    # its own process group, so a build past its bound is stopped with everything it started
    build = subprocess.Popen(
        [str(SOURCE / "scripts" / "build-image")],
        env={**podman.env, "SIDECAR_IMAGE": IMAGE},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = build.communicate(timeout=BUILD)
    except subprocess.TimeoutExpired:
        os.killpg(build.pid, signal.SIGTERM)
        build.communicate(timeout=30)
        pytest.fail(f"scripts/build-image took more than {BUILD}s")
    if build.returncode != 0:
        pytest.fail(f"scripts/build-image exited {build.returncode}:\n{(out + err)[-4000:]}")
    return IMAGE

"""Certificates for the tests, made by the installed sidecar's own `sidecar certs` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SIDECAR = str(Path(sys.executable).with_name("sidecar"))


def certs(*args: str) -> None:
    """``sidecar certs ...``; fails the test when it does not succeed."""
    done = subprocess.run(  # noqa: S603 - the sidecar installed beside this Python
        [SIDECAR, "certs", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr

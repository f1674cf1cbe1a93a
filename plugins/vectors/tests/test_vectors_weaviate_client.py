"""The test Weaviate answers as Weaviate does: the official ``weaviate-client`` 4 reads it.

The client cannot share the sidecar's venv (it pins older grpcio, protobuf and httpx), so
``scripts/setup --test`` gives it one of its own and this test runs
``vectors_weaviate_client_check.py`` with that venv's Python.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def side_python() -> Path:
    """The weaviate-client venv's Python (under the source tree's .venv, also when the suite
    runs from the compiled build's copy of the tree)."""
    root = Path(os.environ.get("SIDECAR_SOURCE_TREE", HERE.parents[2]))
    return root / ".venv" / "side" / "weaviate" / "bin" / "python"


def test_the_official_weaviate_client_reads_the_test_weaviate() -> None:
    """Schema, GraphQL nearVector/where answers and errors parse in Weaviate's own client, so the
    plugin's Weaviate tests talk to something Weaviate-shaped."""
    python = side_python()
    assert python.exists(), f"{python} is missing: scripts/setup --test installs weaviate-client"
    done = subprocess.run(  # noqa: S603 (the venv scripts/setup made)
        [str(python), "vectors_weaviate_client_check.py"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("ok"), done.stdout

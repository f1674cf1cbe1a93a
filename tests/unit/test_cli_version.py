"""`sidecar --version`: what is installed, for bug reports and image checks."""

from __future__ import annotations

import platform
from importlib.metadata import version

import pytest

from sidecar.build_kind import build_kind
from sidecar.cli import main


def test_version_names_the_installed_distribution_and_the_python(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The line a bug report starts with: sidecar's version, the interpreter running it and
    whether its data path is compiled."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    expected = (
        f"sidecar {version('sidecar')} "
        f"({platform.python_implementation()} {platform.python_version()}, {build_kind()})\n"
    )
    assert capsys.readouterr().out == expected

"""The installed sidecar's version, read once per process from its distribution's metadata.

``sidecar --version``, the ``sidecar_build_info`` metric, the dashboard, the ``service.version``
of traces and ``sidecar inject``'s default image tag all say the same thing, so it is looked up
in one place (an ``importlib.metadata`` lookup costs milliseconds).
"""

from __future__ import annotations

__all__ = ["installed_version"]

import functools
from importlib import metadata


@functools.cache
def installed_version() -> str:
    """``pyproject.toml``'s version as installed, or ``unknown`` in a never-installed tree."""
    try:
        return metadata.version("sidecar")
    except metadata.PackageNotFoundError:
        return "unknown"

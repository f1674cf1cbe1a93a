"""sidecar: a lightweight service proxy that runs beside an application.

The names here are the public plugin API (:mod:`sidecar.api`, re-exported): what a plugin
imports, documented in docs/plugins.md, and versioned by ``API_VERSION``. Everything under
``sidecar.*`` is the sidecar's own. Test helpers are in :mod:`sidecar.testing`; running a sidecar
is :class:`sidecar.app.Sidecar` or the ``sidecar`` CLI.
"""

from __future__ import annotations

from .api import *  # noqa: F403 (the public API is exactly sidecar.api's __all__)
from .api import __all__ as _api

__version__ = "0.1.0"

__all__ = [*_api, "__version__"]

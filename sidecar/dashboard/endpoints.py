"""The dashboard's two admin routes: ``GET /dashboard`` (the page) and ``GET /dashboard/data``
(its JSON, :func:`sidecar.dashboard.view.build`).

The page is one self-contained file shipped as package data (``page.html``: inline CSS and
script, nothing fetched from anywhere but ``/dashboard/data`` on the same port), read once. Its
``Content-Security-Policy`` holds the browser to that: no other origin, no external script, style,
font or image. Each sidecar has its own snapshot ring (several run in one process in tests),
created on the first read and dropped with the sidecar.

Not here: what the JSON holds, the window arithmetic, registering the routes
(:mod:`sidecar.admin_routes`).
"""

from __future__ import annotations

__all__ = ["data", "page"]

import functools
import weakref
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from ..api import runtime_of
from .view import build
from .window import SnapshotRing

if TYPE_CHECKING:
    from ..api import ControlView

#: the page may talk to its own origin only, and runs only its own inline script and style.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_NO_STORE = {"cache-control": "no-store"}

_rings: weakref.WeakKeyDictionary[ControlView, SnapshotRing] = weakref.WeakKeyDictionary()


@functools.cache
def _page() -> bytes:
    return resources.files(__package__).joinpath("page.html").read_bytes()


async def page(request: web.Request) -> web.Response:
    return web.Response(
        body=_page(),
        content_type="text/html",
        charset="utf-8",
        headers={**_NO_STORE, "content-security-policy": _CSP, "x-content-type-options": "nosniff"},
    )


async def data(request: web.Request) -> web.Response:
    sidecar = runtime_of(request)
    ring = _rings.get(sidecar)
    if ring is None:
        ring = _rings[sidecar] = SnapshotRing()
    return web.json_response(build(sidecar, ring), headers=_NO_STORE)

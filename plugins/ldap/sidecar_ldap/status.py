"""``GET /ldap`` on the admin port: what the directory said since start, and the cache's size.

The counts of the live checker of the inbound routes (``cache_hits``, ``granted``, ``refused``,
``unavailable``, ``cache_entries``), or ``{"enabled": false}`` without one. Never a user name,
a DN or a password. aiohttp is imported when the route is called, never at plugin load.

Not here: the counting (:mod:`.checker`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar import runtime_of

from .gate import APP_UPSTREAM, LDAP_CHECKER

if TYPE_CHECKING:
    from aiohttp import web


async def ldap_status(request: web.Request) -> web.StreamResponse:
    from aiohttp import web

    checker = runtime_of(request).shared.get(LDAP_CHECKER, APP_UPSTREAM)
    body: dict[str, Any] = {"enabled": checker is not None}
    if checker is not None:
        body.update(checker.describe())
    return web.json_response(body)

"""Routes plugins add to the admin port, and how a handler reaches the running sidecar."""

from __future__ import annotations

__all__ = ["BODY_READ_TIMEOUT", "AdminHandler", "AdminRouteRegistry", "runtime_key", "runtime_of"]

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:
    from aiohttp import web

    from .runtime import ControlView

log = logging.getLogger("sidecar.plugins")

#: what an admin route may answer
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
#: seconds an admin route's request body may take to arrive, read before the handler runs: a
#: client that sends a head and then trickles (or never sends) its body would otherwise hold
#: the connection in a request, where the port cannot evict it to answer a probe
BODY_READ_TIMEOUT = 5.0

AdminHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


@functools.cache
def runtime_key() -> web.AppKey[ControlView]:
    """The admin application's key of the running sidecar's :class:`ControlView`."""
    from aiohttp import web  # the admin port's library; the data path never imports it

    return web.AppKey("sidecar.runtime")


def runtime_of(request: web.Request) -> ControlView:
    """The running sidecar, as an admin handler sees it."""
    return request.app[runtime_key()]


class AdminRouteRegistry(Registry[AdminHandler]):
    """Admin-port routes, keyed ``"METHOD /path"``."""

    kind = "admin route"

    def add(self, method: str, path: str, handler: AdminHandler) -> None:
        """Serve ``handler`` for ``method`` on ``path`` (which starts with ``/``)."""
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise ValueError(f"admin route {path!r}: method {method!r} is none of {_METHODS}")
        if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "? #"):
            raise ValueError(f"admin route {path!r}: a path starts with '/', without a query")
        key = f"{method.upper()} {path}"
        self._add(key, _guarded(handler, self.owner, key))


def _guarded(handler: AdminHandler, owner: str, key: str) -> AdminHandler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        # imported when a route first runs, not when it is registered: a sidecar that is only
        # probed and scraped never loads aiohttp (sidecar.control_light)
        from aiohttp import web

        if request.body_exists:
            # the whole body, within a deadline (and aiohttp's client_max_size, 1 MiB: past it
            # a 413): the handler's read(), text() and json() then answer from it
            try:
                async with asyncio.timeout(BODY_READ_TIMEOUT):
                    await request.read()
            except TimeoutError:
                late = web.json_response(
                    {
                        "error": "body_timeout",
                        "detail": f"the request body did not arrive within {BODY_READ_TIMEOUT:g}s",
                    },
                    status=408,
                )
                late.force_close()  # the rest of the body may still come: not on this connection
                return late
        try:
            answer: object = await handler(request)
        except web.HTTPException:
            raise  # aiohttp's way of answering 404, redirects...
        except Exception:
            log.exception(
                f"plugin {owner!r}: admin route {key!r} failed",
                extra={"fields": {"plugin": owner, "route": key}},
            )
            return web.json_response({"error": "internal", "plugin": owner}, status=500)
        if isinstance(answer, web.StreamResponse):
            return answer
        log.error(
            f"plugin {owner!r}: admin route {key!r} returned a {type(answer).__name__}, "
            f"not an aiohttp response",
            extra={"fields": {"plugin": owner, "route": key}},
        )
        return web.json_response({"error": "internal", "plugin": owner}, status=500)

    return guarded

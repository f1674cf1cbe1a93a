"""The admin port (127.0.0.1:15000): serves the routes plugins register.

The built-in routes (``/healthz``, ``/readyz``, ``/metrics``, ``/config``, ``/upstreams``,
``/plugins``) are themselves registered by an internal plugin (:mod:`sidecar.admin_routes`).
Routes are aiohttp handlers: the admin port is the control plane, not the hot path. A handler
sees the running sidecar only as its read-only :class:`~sidecar.api.ControlView`
(``sidecar.api.runtime_of(request)``). The probes and ``/metrics`` are answered without aiohttp
(:mod:`sidecar.control_light`) while they are the built-in ones; the first other request loads
aiohttp and builds the application (:mod:`sidecar.control_port`).

The port keeps at most a few dozen connections, closing the oldest idle one to make room
(:mod:`sidecar.control_port`), so idle connections cannot use up the process's file handles.
Every request passes the ``Host`` check first (:mod:`sidecar.host_guard`): only loopback names
and the configured address are answered, so a DNS-rebinding page in a browser gets 421.
"""

from __future__ import annotations

__all__ = ["MISDIRECTED", "AdminServer", "misdirected_requests"]

import functools
from typing import TYPE_CHECKING

from . import admin_routes
from .api import AdminRouteRegistry, ControlView, RuntimeView
from .api.admin import runtime_key
from .control_answers import Answer
from .control_light import LightRoutes
from .control_port import ControlPort
from .host_guard import MisdirectedRequests, admin_hosts, host_guard, refusing

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web

#: ``resources`` key of the :class:`MisdirectedRequests` both control ports count into (one
#: counter family per metrics registry: a second one would be refused by it).
MISDIRECTED = "admin.misdirected"


def misdirected_requests(runtime: RuntimeView) -> MisdirectedRequests:
    """The sidecar's count of requests refused for their ``Host``, made by whichever port asks
    first (the admin port, up before the lifespans; the metrics port otherwise)."""
    seen = runtime.resources.get(MISDIRECTED)
    if isinstance(seen, MisdirectedRequests):
        return seen
    made = runtime.resources[MISDIRECTED] = MisdirectedRequests(runtime.metrics.registry)
    return made


class AdminServer:
    def __init__(self, sidecar: ControlView, routes: AdminRouteRegistry) -> None:
        #: requests refused for their Host, on this port and the metrics port
        self.misdirected = misdirected_requests(sidecar)
        self._sidecar = sidecar
        self._routes = routes
        self._accept = admin_hosts(sidecar.config.admin.address)
        self._allowed = "127.0.0.1, localhost, [::1] or its configured address"
        light = LightRoutes(
            answers=_probes(sidecar, routes),
            methods=frozenset({b"GET"}),  # as the aiohttp routes: HEAD is aiohttp's 405
            accept=self._accept,
            refuse=refusing("admin", self.misdirected, self._allowed),
        )
        # connections closed to make room (evicted) or refused (limit): sidecar.control_port
        refused = sidecar.metrics.connections_refused
        self._port = ControlPort(
            "admin", light, lambda: self.app, count=lambda why: refused.labels("admin", why).inc()
        )

    @functools.cached_property
    def app(self) -> web.Application:
        """The aiohttp application of every registered route, made when first needed."""
        from aiohttp import web

        guard = host_guard("admin", self._accept, self.misdirected, self._allowed)
        app = web.Application(middlewares=[guard])
        # handlers reach the sidecar through sidecar.api.runtime_of(request)
        app[runtime_key()] = self._sidecar
        for reg in self._routes.registrations():
            method, path = reg.name.split(" ", 1)
            app.router.add_route(method, path, reg.item)
        return app

    @property
    def port(self) -> int:
        return self._port.port

    @property
    def aiohttp_loaded(self) -> bool:
        """Whether a request other than a probe or a scrape has been served (aiohttp's app)."""
        return self._port.aiohttp_loaded

    async def start(self, host: str, port: int) -> None:
        await self._port.start(host, port)

    async def stop(self) -> None:
        await self._port.stop()


def _probes(sidecar: RuntimeView, routes: AdminRouteRegistry) -> dict[str, Callable[[], Answer]]:
    """The registered ``GET`` routes served by the built-in probe handlers, answered without
    aiohttp; a route a plugin registered in their place is left to aiohttp."""
    answers: dict[str, Callable[[], Answer]] = {}
    for reg in routes.registrations():
        method, path = reg.name.split(" ", 1)
        answer = admin_routes.PROBES.get(getattr(reg.item, "__wrapped__", reg.item))
        if method == "GET" and answer is not None:
            answers[path] = functools.partial(answer, sidecar)
    return answers

"""The admin port (aiohttp, 127.0.0.1:15000): serves the routes plugins register.

The built-in routes (``/healthz``, ``/readyz``, ``/metrics``, ``/config``, ``/upstreams``,
``/plugins``) are themselves registered by an internal plugin (:mod:`sidecar.admin_routes`).
aiohttp is right here: the admin port is the control plane, not the hot path. A handler sees
the running sidecar only as its read-only :class:`~sidecar.api.ControlView`
(``sidecar.api.runtime_of(request)``).

The port keeps at most a few dozen connections, closing the oldest idle one to make room
(:mod:`sidecar.control_port`), so idle connections cannot use up the process's file handles.
Every request passes the ``Host`` check first (:mod:`sidecar.host_guard`): only loopback names
and the configured address are answered, so a DNS-rebinding page in a browser gets 421.
"""

from __future__ import annotations

__all__ = ["MISDIRECTED", "AdminServer", "misdirected_requests"]

import asyncio

from aiohttp import web

from .api import AdminRouteRegistry, ControlView, RuntimeView
from .api.admin import runtime_key
from .control_port import listen_capped
from .host_guard import MisdirectedRequests, admin_hosts, host_guard

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
        accept = admin_hosts(sidecar.config.admin.address)
        allowed = "127.0.0.1, localhost, [::1] or its configured address"
        app = web.Application(middlewares=[host_guard("admin", accept, self.misdirected, allowed)])
        # handlers reach the sidecar through sidecar.api.runtime_of(request)
        app[runtime_key()] = sidecar
        for reg in routes.registrations():
            method, path = reg.name.split(" ", 1)
            app.router.add_route(method, path, reg.item)
        self.app = app
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._listening: asyncio.AbstractServer | None = None
        # connections closed to make room (evicted) or refused (limit): sidecar.control_port
        self._refused = sidecar.metrics.connections_refused
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        await self.runner.setup()
        refused = self._refused
        self._listening = await listen_capped(
            self.runner,
            host,
            port,
            name="admin",
            count=lambda why: refused.labels("admin", why).inc(),
        )
        sockets = getattr(self._listening, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.close()
        await self.runner.cleanup()

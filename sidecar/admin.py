"""The admin port (aiohttp, 127.0.0.1:15000): serves the routes plugins register.

The built-in routes (``/healthz``, ``/readyz``, ``/metrics``, ``/config``, ``/upstreams``,
``/plugins``) are themselves registered by an internal plugin (:mod:`sidecar.admin_routes`).
aiohttp is right here: the admin port is the control plane, not the hot path.

Every request passes the ``Host`` check first (:mod:`sidecar.host_guard`): only loopback names
and the configured address are answered, so a DNS-rebinding page in a browser gets 421.
"""

from __future__ import annotations

__all__ = ["SIDECAR", "AdminServer"]

from typing import TYPE_CHECKING

from aiohttp import web

from .host_guard import MisdirectedRequests, admin_hosts, host_guard
from .registry import AdminRouteRegistry

if TYPE_CHECKING:
    from .app import Sidecar

SIDECAR: web.AppKey[Sidecar] = web.AppKey("sidecar")


class AdminServer:
    def __init__(self, sidecar: Sidecar, routes: AdminRouteRegistry) -> None:
        #: requests refused for their Host, on this port and the metrics port
        self.misdirected = MisdirectedRequests(sidecar.metrics.registry)
        accept = admin_hosts(sidecar.config.admin.address)
        allowed = "127.0.0.1, localhost, [::1] or its configured address"
        app = web.Application(middlewares=[host_guard("admin", accept, self.misdirected, allowed)])
        app[SIDECAR] = sidecar
        for reg in routes.registrations():
            method, path = reg.name.split(" ", 1)
            app.router.add_route(method, path, reg.item)
        self.app = app
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        await self.runner.cleanup()

"""The optional metrics port (``admin.metrics_address``): ``/metrics``, ``/healthz`` and ``/readyz``
on an address Prometheus and the kubelet can reach, a built-in plugin (a lifespan).

The admin port stays loopback-only (``/config``, ``/upstreams`` and plugin routes
describe the topology, and nothing there is authenticated), so a Prometheus in another pod
cannot scrape it, nor can an ``httpGet`` probe reach it. This port serves only what is safe to
expose on the pod network, the way Envoy and Linkerd expose their metrics and health port: the
same answers as the admin port, nothing else (every other path is 404). Off by default.

It is up from just after the admin port (``/readyz`` says ``starting``) until the listeners have
drained (``/readyz`` says ``draining`` meanwhile), then closes before the admin port. Its address
is fixed at start-up, as all of ``admin`` is. A port that cannot be bound stops start-up
(``sidecar run`` exits 1 naming this plugin and the address).

Its requests are answered without aiohttp (:mod:`sidecar.control_light`): ``GET`` and ``HEAD``
of the three paths, and 404 for other plain paths; only an odd request (another method, a
``%``-escaped path, HTTP/1.0...) loads aiohttp, whose application here serves the same.

Every request passes the ``Host`` check first (:mod:`sidecar.host_guard`): its configured
address, loopback and any IP literal (the pod IP the kubelet and Prometheus use) are answered;
any other DNS name gets 421, as a DNS-rebinding page in a browser would send.

Not here: the admin port (:mod:`sidecar.admin`), the answers (:mod:`sidecar.admin_routes`).
"""

from __future__ import annotations

__all__ = ["METRICS_PORT_ROUTES", "metrics_port"]

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from . import admin_routes
from .admin import misdirected_requests
from .admin_routes import ProbeAnswer
from .api import AdminHandler, LifespanRegistry, hookimpl
from .config.types import split_address
from .control_answers import aiohttp_response
from .control_light import LightRoutes
from .control_port import ControlPort
from .host_guard import host_guard, metrics_hosts, refusing

if TYPE_CHECKING:
    from aiohttp import web

    from .api import RuntimeView

log = logging.getLogger("sidecar")

#: What the port serves: probes and the exposition, nothing that describes the topology.
METRICS_PORT_ROUTES: tuple[tuple[str, ProbeAnswer], ...] = (
    ("/metrics", admin_routes.metrics_answer),
    ("/healthz", admin_routes.healthz_answer),
    ("/readyz", admin_routes.readyz_answer),
)


@asynccontextmanager
async def metrics_port(sidecar: RuntimeView) -> AsyncIterator[None]:
    """Serve :data:`METRICS_PORT_ROUTES` on ``admin.metrics_address`` while the sidecar runs."""
    address = sidecar.config.admin.metrics_address
    if address is None:
        yield
        return
    # one count of refused requests for both ports (sidecar_admin_misdirected_total{port})
    seen = misdirected_requests(sidecar)
    allowed = "its configured address, an IP address (the pod's) or localhost"
    accept = metrics_hosts(address)
    light = LightRoutes(
        answers={path: functools.partial(answer, sidecar) for path, answer in METRICS_PORT_ROUTES},
        methods=frozenset({b"GET", b"HEAD"}),  # aiohttp's add_get serves HEAD too
        accept=accept,
        refuse=refusing("metrics", seen, allowed),
        not_found=True,
    )

    def build_app() -> web.Application:
        from aiohttp import web

        app = web.Application(middlewares=[host_guard("metrics", accept, seen, allowed)])
        for path, answer in METRICS_PORT_ROUTES:
            app.router.add_get(path, _serving(answer, sidecar))
        return app

    refused = sidecar.metrics.connections_refused
    port = ControlPort(
        "metrics", light, build_app, count=lambda why: refused.labels("metrics", why).inc()
    )
    host, number = split_address(address)
    try:
        await port.start(host, number)
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {address} (metrics): {e.strerror}") from None
    log.info("metrics port up", extra={"fields": {"metrics": address}})
    try:
        yield
    finally:
        await port.stop()


def _serving(answer: ProbeAnswer, runtime: RuntimeView) -> AdminHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return aiohttp_response(answer(runtime))

    return handler


@hookimpl(trylast=True)
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("metrics_port", metrics_port)

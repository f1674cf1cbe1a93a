"""The sidecar's own gRPC services on the gRPC port: ``grpc.health.v1.Health``, the admin API
``sidecar.v1.Admin`` (``proto/sidecar/v1``) and server reflection listing those three.

What the port is handed (:data:`CONTROL`, :mod:`.control`): their names, and how either server
binds them. Both bind one table of methods (:mod:`.service_table`), so they answer alike:

- grpcio's server (``grpc.server: grpcio``) gets them as method handlers
  (:mod:`.services_grpcio`), added before the proxy's generic handler, so they are found first;
- the HTTP/2 front (the default) answers a call to them itself (:class:`AnsweredServices`),
  without grpcio. Health never needs protobuf (:mod:`.health_codec`); the admin API and
  reflection do, and load it on their first call, so a sidecar nobody asks about its admin API
  never holds protobuf. That first call waits for the import (about 15 ms, once).

A call to any other service is proxied. Reflection describes only these: the sidecar holds no
descriptors of the services it proxies. Not here: the services themselves
(:mod:`.health_service`, :mod:`.admin_api`, :mod:`.reflection_service`).
"""

from __future__ import annotations

__all__ = ["CONTROL", "SERVICE_NAMES", "AnsweredServices", "SidecarServices"]

from typing import TYPE_CHECKING, Any

from .control import ControlServices
from .health_service import HealthService
from .service_table import (
    ADMIN,
    HEALTH,
    REFLECTION,
    Method,
    answer,
    health_methods,
    protobuf_methods,
    unimplemented,
)

if TYPE_CHECKING:
    from ..api import ControlView
    from ..exchange import Exchange, Response

#: what reflection lists (and nothing else).
SERVICE_NAMES: tuple[str, ...] = (HEALTH, ADMIN, REFLECTION[0])
#: the calls that need protobuf (see the module docstring)
_PROTOBUF_PREFIXES = tuple(f"/{name}/" for name in (ADMIN, *REFLECTION))


class SidecarServices:
    """The services of one server; its owner (the listener) stops them.

    Drain order: :meth:`drain` first (health answers NOT_SERVING and open ``Watch`` streams end,
    so they do not hold the server's grace), then stop the server, then :meth:`aclose`.
    """

    def __init__(self, health: HealthService) -> None:
        self.health = health

    def drain(self) -> None:
        """Every health entry NOT_SERVING from now on; ``Watch`` streams send it and end."""
        self.health.drain()

    async def aclose(self) -> None:
        """Stop the health poll (a task) and wait for it. Idempotent."""
        await self.health.aclose()


class AnsweredServices(SidecarServices):
    """The services answering calls themselves (the HTTP/2 front)."""

    def __init__(self, health: HealthService, sidecar: ControlView) -> None:
        super().__init__(health)
        self._sidecar = sidecar
        self._methods: dict[str, Method] = health_methods(health)
        self._protobuf = False

    async def answer(self, exchange: Exchange) -> Response:
        path = exchange.path
        method = self._methods.get(path)
        if method is None and not self._protobuf and path.startswith(_PROTOBUF_PREFIXES):
            # the first admin or reflection call: protobuf and the messages load now, once
            self._methods.update(protobuf_methods(self._sidecar, SERVICE_NAMES))
            self._protobuf = True
            method = self._methods.get(path)
        if method is None:
            return unimplemented(path)
        return await answer(method, exchange)


def add_services(server: Any, sidecar: ControlView) -> SidecarServices:
    """Add the services to ``server`` (a ``grpc.aio.Server`` not yet started).

    Call it on the event loop (it starts the health poll); await ``aclose()`` on what it returns
    once the server has stopped.
    """
    from .services_grpcio import add_methods  # grpcio's server: grpcio is loaded already

    health = HealthService(sidecar)
    add_methods(server, {**health_methods(health), **protobuf_methods(sidecar, SERVICE_NAMES)})
    health.start()
    return SidecarServices(health)


def serve_services(sidecar: ControlView) -> AnsweredServices:
    """The services as answers to calls (the HTTP/2 front); on the event loop, at start-up."""
    health = HealthService(sidecar)
    health.start()
    return AnsweredServices(health, sidecar)


#: What the gRPC port is handed (:mod:`.control`): these services, by name (reflection's two
#: versions), and both ways to serve them.
CONTROL = ControlServices((*SERVICE_NAMES, REFLECTION[1]), add_services, serve_services)

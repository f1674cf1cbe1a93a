"""The sidecar's own gRPC services on the gRPC port: ``grpc.health.v1.Health``, the admin API
``sidecar.v1.Admin`` (``proto/sidecar/v1``) and server reflection listing those three.

The listener calls :func:`add_services` before it adds the proxy's generic handler, so these
services are found first (a call to any other service is proxied). Reflection describes only
these: the sidecar holds no descriptors of the services it proxies.

Not here: the services themselves (:mod:`~sidecar.grpc.health_service`,
:mod:`~sidecar.grpc.admin_api`), the listener (:mod:`~sidecar.grpc.listener`).
"""

from __future__ import annotations

__all__ = ["CONTROL", "SERVICE_NAMES", "SidecarServices", "add_services"]

from typing import TYPE_CHECKING, Any

from grpc_health.v1 import health as grpc_health
from grpc_reflection.v1alpha import reflection

from ..v1 import admin_pb2
from .admin_api import AdminApi
from .control import ControlServices
from .health_service import HealthService

if TYPE_CHECKING:
    from ..api import ControlView

#: what reflection lists (and nothing else).
SERVICE_NAMES: tuple[str, ...] = (
    grpc_health.SERVICE_NAME,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    reflection.SERVICE_NAME,
)


class SidecarServices:
    """What :func:`add_services` put on a server; its owner (the listener) stops it.

    Drain order: :meth:`drain` first (health answers NOT_SERVING and open ``Watch`` streams end,
    so they do not hold the server's grace), then stop the server, then :meth:`aclose`.
    """

    def __init__(self, health: HealthService, admin: AdminApi) -> None:
        self.health = health
        self.admin = admin

    def drain(self) -> None:
        """Every health entry NOT_SERVING from now on; ``Watch`` streams send it and end."""
        self.health.drain()

    async def aclose(self) -> None:
        """Stop the health poll (a task) and wait for it. Idempotent."""
        await self.health.aclose()


def add_services(server: Any, sidecar: ControlView) -> SidecarServices:
    """Add the sidecar's own services to ``server`` (a ``grpc.aio.Server`` not yet started).

    Call it on the event loop (it starts the health poll); await ``aclose()`` on what it returns
    once the server has stopped.
    """
    health = HealthService(sidecar)
    health.add_to(server)
    admin = AdminApi(sidecar)
    admin.add_to(server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    health.start()
    return SidecarServices(health, admin)


#: What the gRPC port is handed (:mod:`sidecar.grpc.control`): these services, by name, with
#: both reflection versions grpcio's reflection answers.
CONTROL = ControlServices((*SERVICE_NAMES, "grpc.reflection.v1.ServerReflection"), add_services)

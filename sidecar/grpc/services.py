"""The sidecar's own gRPC services on the gRPC port: ``grpc.health.v1.Health``, the admin API
(``proto/sidecar/v1``) and server reflection for them.

SCAFFOLD: filled in by the gRPC control-plane work. The listener calls :func:`add_services`
before it adds the proxy's generic handler, so these services are found first.
"""

from __future__ import annotations

__all__ = ["add_services"]

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Sidecar


def add_services(server: Any, sidecar: Sidecar) -> None:
    """Add the sidecar's own services to ``server`` (a ``grpc.aio.Server`` not yet started)."""

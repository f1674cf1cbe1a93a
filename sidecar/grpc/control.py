"""What the gRPC port needs of the sidecar's own gRPC services (health, admin API, reflection).

The port serves them beside the proxy, but they belong to the control plane
(:mod:`sidecar.grpc.services`), which sits above the fronts. So the port only knows this shape;
the sidecar hands the real services over when it builds its fronts (published under
:data:`RESOURCE`), and a gRPC port built without them (tests, fuzzing) proxies only.
"""

from __future__ import annotations

__all__ = ["RESOURCE", "ControlServices", "ServicesHandle"]

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..api import ControlView

#: the ``resources`` name under which the sidecar publishes its :class:`ControlServices`.
RESOURCE = "grpc.control_services"


class ServicesHandle(Protocol):
    """The services added to one server; the port stops them with it."""

    def drain(self) -> None:
        """Health answers NOT_SERVING and open ``Watch`` streams end (before the server stops)."""

    async def aclose(self) -> None:
        """Stop their background work (after the server stopped)."""


@dataclass(frozen=True)
class ControlServices:
    """The sidecar's own gRPC services."""

    #: the fully qualified service names they answer (calls to them are not proxied).
    names: tuple[str, ...]
    #: ``add(server, runtime)`` adds them to a ``grpc.aio`` server not yet started.
    add: Callable[[Any, ControlView], ServicesHandle]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The method-path prefixes of their calls (``/grpc.health.v1.Health/``...)."""
        return tuple(f"/{name}/" for name in self.names)

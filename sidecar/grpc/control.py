"""What the gRPC port needs of the sidecar's own gRPC services (health, admin API, reflection).

The port serves them beside the proxy, but they belong to the control plane
(:mod:`sidecar.grpc.services`), which sits above the fronts. So the port only knows this shape;
the sidecar hands the real services over when it builds its fronts (published under
:data:`RESOURCE`), and a gRPC port built without them (tests, fuzzing) proxies only.

Either server binds them its own way: grpcio's adds them to its ``grpc.aio`` server
(:attr:`ControlServices.add`); the HTTP/2 front, which has no grpcio, asks for them as an answer
to a call (:attr:`ControlServices.serve`), so it serves them without loading grpcio.
"""

from __future__ import annotations

__all__ = ["RESOURCE", "ControlServices", "ServedServices", "ServiceAbort", "ServicesHandle"]

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..api import ControlView
    from ..exchange import Exchange, Response

#: the ``resources`` name under which the sidecar publishes its :class:`ControlServices`.
RESOURCE = "grpc.control_services"


class ServicesHandle(Protocol):
    """The services added to one server; the port stops them with it."""

    def drain(self) -> None:
        """Health answers NOT_SERVING and open ``Watch`` streams end (before the server stops)."""

    async def aclose(self) -> None:
        """Stop their background work (after the server stopped)."""


class ServedServices(ServicesHandle, Protocol):
    """The services answering calls themselves (for a server that is not grpcio's)."""

    async def answer(self, exchange: Exchange) -> Response:
        """Answer one call to them: its request messages are ``exchange.body``, its answer's
        messages the response body, its status the trailers (an unknown method:
        UNIMPLEMENTED)."""
        ...


class ServiceAbort(Exception):
    """A call to one of the services ends with this status (never OK) and details."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(frozen=True)
class ControlServices:
    """The sidecar's own gRPC services."""

    #: the fully qualified service names they answer (calls to them are not proxied).
    names: tuple[str, ...]
    #: ``add(server, runtime)`` adds them to a ``grpc.aio`` server not yet started.
    add: Callable[[Any, ControlView], ServicesHandle]
    #: ``serve(runtime)``: them as answers to calls; called on the event loop at start-up.
    serve: Callable[[ControlView], ServedServices]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The method-path prefixes of their calls (``/grpc.health.v1.Health/``...)."""
        return tuple(f"/{name}/" for name in self.names)

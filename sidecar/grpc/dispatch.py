"""One gRPC call from the app, routed and answered: what both servers of the gRPC port
(:mod:`.listener`, grpcio's; :mod:`.h2_listener`, the HTTP/2 front) do once they built the
call's :class:`~sidecar.exchange.Exchange`.

The route table picks the chain; a call no route takes is answered UNIMPLEMENTED ``no_route``
here (counted, and logged by the sidecar's ``on_unrouted``), since no chain (so no ``rescue``)
is there to answer it. Not here: reading the call or writing the answer (each server's own).
"""

from __future__ import annotations

__all__ = ["GRPC_FRONT", "Unrouted", "dispatch"]

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..api.traits import GRPC_STATUSES, FrontTraits
from ..errors import SidecarError
from ..exchange import Exchange, Response
from .routes import GrpcRoutes
from .wire import GRPC_LISTENER, error_response

#: The gRPC port's traits (both servers): answers in gRPC terms, the body a stream of whole
#: messages.
GRPC_FRONT = FrontTraits(
    GRPC_LISTENER, statuses=GRPC_STATUSES, whole_messages=True, error_response=error_response
)

if TYPE_CHECKING:
    from ..telemetry.metrics import Metrics

log = logging.getLogger("sidecar.grpc")

#: the sidecar's hook for a call no route took (its access-log line).
Unrouted = Callable[[Exchange, SidecarError], None]


async def dispatch(
    routes: GrpcRoutes, ex: Exchange, metrics: Metrics, on_unrouted: Unrouted | None
) -> Response:
    """Route ``ex`` (by its path, authority and metadata) and run its chain; never raises."""
    try:
        route, path = routes.resolve(ex.path, ex.host, ex.headers)
    except SidecarError as e:
        metrics.requests.labels(GRPC_LISTENER, "", "", str(e.grpc_code)).inc()
        metrics.errors.labels(GRPC_LISTENER, "", e.code).inc()
        if on_unrouted is not None:
            on_unrouted(ex, e)
        return error_response(e)
    ex.path = path
    ex.upstream = route.upstream
    ex.route = route.name
    try:
        return await route.handler(ex)
    except Exception:  # rescue answers everything; a chain without it must not kill the call
        log.exception("unexpected error outside the filter chain")
        return error_response(SidecarError("unexpected error in the sidecar"))

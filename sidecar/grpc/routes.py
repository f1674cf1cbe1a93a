"""The gRPC listener's route table: which upstream a call's method goes to.

A gRPC call names its method as ``/<package.Service>/<Method>``. Routing tries, in order:

1. explicit ``routes`` whose upstream uses the ``grpc`` adapter, first match wins: a
   ``path_prefix`` on the method path (``/payments.v1.Payments`` matches its methods), a
   ``host`` on the ``:authority`` (only where grpcio tells it, see :func:`authority_of`), exact
   metadata values (``headers``); ``prefix_rewrite`` renames the method sent upstream;
2. the ``:authority`` naming an upstream (port ignored): the app chose it with its channel
   target or ``grpc.default_authority``;
3. the fully qualified service name in ``upstreams.<name>.services``.

Anything else is ``NoRoute`` (UNIMPLEMENTED with ``x-sidecar-error: no_route``). Built once per
config and swapped whole on reload, like the HTTP :class:`~sidecar.routing.RouteTable`, whose
explicit-route matching (:func:`~sidecar.routing.match_explicit`) it shares.
"""

from __future__ import annotations

__all__ = ["GrpcRoutes", "authority_of", "service_of"]

from collections.abc import Sequence
from typing import Any

from ..errors import NoRoute
from ..exchange import Headers
from ..routing import ExplicitRoute, Route, bare_host, match_explicit


def service_of(path: str) -> str | None:
    """``payments.v1.Payments`` from ``/payments.v1.Payments/Charge``; ``None`` when the path
    is not a gRPC method path."""
    end = path.find("/", 1)
    if path[:1] != "/" or end < 2 or end == len(path) - 1 or "/" in path[end + 1 :]:
        return None
    return path[1:end]


def authority_of(context: Any) -> str | None:
    """The ``:authority`` of a call, when grpcio exposes it (grpc/grpc#38906 proposes
    ``experimental_authority()``; grpcio 1.85 has no way to read it on a server)."""
    read = getattr(context, "experimental_authority", None)
    if read is None:
        return None
    value = read()
    return value if isinstance(value, str) and value else None


class GrpcRoutes:
    """Immutable once built; a reload builds a new one and swaps it in."""

    __slots__ = ("by_authority", "by_service", "explicit")

    def __init__(
        self,
        by_upstream: dict[str, Route],
        services: dict[str, str],
        explicit: Sequence[ExplicitRoute] = (),
    ) -> None:
        """``by_upstream``: each gRPC upstream's route; ``services``: service name → upstream."""
        self.by_authority = {name.lower(): route for name, route in by_upstream.items()}
        self.by_service = {svc: by_upstream[up] for svc, up in services.items()}
        self.explicit = tuple(explicit)

    def resolve(self, path: str, authority: str | None, headers: Headers) -> tuple[Route, str]:
        """The route of a call to method ``path`` and the method path to call upstream."""
        if self.explicit:
            hit = match_explicit(self.explicit, path, authority, headers)
            if hit is not None:
                return hit
        if authority:
            route = self.by_authority.get(bare_host(authority))
            if route is not None:
                return route, path
        service = service_of(path)
        if service is None:
            raise NoRoute(f"{path[:200]!r} is not a gRPC method path (/package.Service/Method)")
        route = self.by_service.get(service)
        if route is None:
            raise NoRoute(f"no upstream serves gRPC service {service[:200]!r}")
        return route, path

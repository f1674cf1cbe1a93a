"""The gRPC port as a front (``grpc``): its routes and its server (grpcio's or the h2 one).

Its routes are the upstreams whose adapter answers in gRPC terms (reached by ``services`` or by
an authority naming them) and the explicit routes to them; every chain is composed for the gRPC
front's traits, so rescue answers in gRPC statuses. Registered with the other built-in fronts
(:mod:`sidecar.listeners.fronts`).

The server is imported when the front is built (start-up), the one ``grpc.server`` names: the
HTTP/2 front needs no grpcio, so only ``grpc.server: grpcio`` (or a gRPC upstream) loads it.
"""

from __future__ import annotations

__all__ = ["GrpcFront"]

from typing import TYPE_CHECKING

from ..api.traits import GRPC_STATUSES
from ..errors import ConfigError, ConfigProblem
from ..listeners.front_base import ListenerFront, explicit_routes
from ..routing import Route
from .control import RESOURCE as CONTROL_SERVICES
from .control import ControlServices
from .dispatch import GRPC_FRONT
from .routes import GrpcRoutes

if TYPE_CHECKING:
    from ..api import FrontContext, RouteBuilder
    from ..chain import Handler
    from .h2_listener import H2GrpcListener
    from .listener import GrpcListener


class GrpcFront(ListenerFront["GrpcListener | H2GrpcListener"]):
    """``grpc``: the port gRPC apps call upstreams through."""

    traits = GRPC_FRONT

    def __init__(self, ctx: FrontContext) -> None:
        cfg = ctx.config.grpc
        super().__init__(cfg.address)
        control = ctx.runtime.resources.get(CONTROL_SERVICES)
        own = control if isinstance(control, ControlServices) else None
        self.listener: GrpcListener | H2GrpcListener
        if cfg.server == "h2":
            from .h2_listener import H2GrpcListener

            h2 = H2GrpcListener(cfg, GrpcRoutes({}, {}), ctx.metrics, ctx.runtime, own)
            h2.cap.limit = ctx.connection_cap(cfg.max_connections)
            self.listener = h2
        else:
            from .listener import GrpcListener  # grpcio: only for this server (see above)

            self.listener = GrpcListener(cfg, GrpcRoutes({}, {}), ctx.metrics, ctx.runtime, own)
        traits, unrouted = self.traits, ctx.on_unrouted
        # gRPC answers carry no body: nothing was sent beside the status
        self.listener.on_unrouted = lambda exchange, error: unrouted(traits, exchange, error, 0)

    def compose(self, builder: RouteBuilder) -> GrpcRoutes:
        config, file = builder.config, builder.config_name
        terminals: dict[str, Handler] = {}
        by_upstream: dict[str, Route] = {}
        services: dict[str, str] = {}
        for name, up in config.upstreams.items():
            if builder.adapter_traits(up.adapter).statuses != GRPC_STATUSES:
                if up.services:
                    raise ConfigError(
                        [
                            ConfigProblem(
                                file,
                                f"upstreams.{name}.services",
                                f"gRPC services are routed to upstreams with adapter: grpc; "
                                f"this one uses {up.adapter!r}",
                            )
                        ]
                    )
                continue
            try:
                terminals[name] = builder.terminal(name)
            except OSError as e:  # a certificate file
                raise ConfigError([ConfigProblem(file, f"upstreams.{name}.tls", str(e))]) from None
            handler = builder.chain(self.traits, name, name, terminals[name])
            by_upstream[name] = Route(name, name, handler)
            services.update(dict.fromkeys(up.services, name))
        return GrpcRoutes(by_upstream, services, explicit_routes(builder, self.traits, terminals))

    def swap(self, routes: GrpcRoutes) -> None:
        self.listener.routes = routes

"""The built-in fronts as the fronts hook sees them: the app-facing HTTP port (``http``), the
gRPC port (``grpc``, :mod:`sidecar.grpc.front`) and the peer-facing mTLS port (``inbound``).

Each composes its own routes from the config with the sidecar's route builder (the same filters
for every front, told apart by the front's traits), and owns its listener. Registered by this
module's ``sidecar_register_fronts``, in the order they start.
"""

from __future__ import annotations

__all__ = ["HttpFront", "InboundFront"]

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from ..api import FrontContext, FrontRegistry, RouteBuilder, hookimpl
from ..api.fronts import AppActivity
from ..api.traits import GRPC_STATUSES
from ..config import inbound_routes
from ..config.types import split_address
from ..errors import NoRoute, PluginError
from ..grpc.front import GrpcFront
from ..routing import ExplicitRoute, Route, RouteTable
from ..tls.contexts import server_material
from ..tls.identity import RESOURCE as INBOUND_TLS
from .front_base import ListenerFront, explicit_routes
from .http import HTTP_FRONT, HttpListener
from .inbound import INBOUND_FRONT, InboundListener

if TYPE_CHECKING:
    from ..chain import Handler
    from ..config.models import SidecarConfig, UpstreamConfig
    from ..exchange import Exchange, Response
    from ..tls.material import TlsMaterial


class HttpFront(ListenerFront[HttpListener]):
    """``http``: the port the app calls upstreams through, ``/<upstream>/...`` and routes."""

    traits = HTTP_FRONT

    def __init__(self, ctx: FrontContext) -> None:
        cfg = ctx.config.http
        super().__init__(cfg.address)
        self.listener = HttpListener(cfg, RouteTable({}), ctx.metrics)
        self.listener.cap.limit = ctx.connection_cap(cfg.max_connections)
        self.listener.on_unrouted = functools.partial(ctx.on_unrouted, self.traits)

    def compose(self, builder: RouteBuilder) -> RouteTable:
        config = builder.config
        terminals: dict[str, Handler] = {}
        by_upstream: dict[str, Route] = {}
        for name, up in config.upstreams.items():
            if builder.adapter_traits(up.adapter).statuses == GRPC_STATUSES:
                # served by the gRPC port; here it answers clearly
                by_upstream[name] = Route(name, name, _grpc_only(name, config))
                continue
            try:
                terminals[name] = builder.terminal(name)
            except OSError as e:
                raise PluginError(
                    f"adapter {up.adapter!r} failed to build upstream {name!r}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            handler = builder.chain(self.traits, name, name, terminals[name])
            by_upstream[name] = Route(name, name, handler)
        # a route to a gRPC upstream is the gRPC port's
        return RouteTable(by_upstream, explicit_routes(builder, self.traits, terminals))

    def swap(self, routes: RouteTable) -> None:
        # new calls take the new table; in-flight calls finish on the handlers they hold
        self.listener.routes = routes


class InboundFront:
    """``inbound``: the mTLS port peers reach the app through (``inbound`` in the config)."""

    traits = INBOUND_FRONT
    faces: Literal["app", "peers"] = "peers"

    def __init__(self, ctx: FrontContext, cfg_address: str) -> None:
        self.ctx = ctx
        self._address = cfg_address
        self.listener: InboundListener | None = None

    def compose(self, builder: RouteBuilder) -> tuple[RouteTable, TlsMaterial, UpstreamConfig]:
        """The routes, each ending at the local app, and the TLS material: the live one while
        ``inbound.tls`` names the same files."""
        cfg = builder.config.inbound
        assert cfg is not None  # the front exists only with an inbound section (restart-only)
        live = self.listener.tls if self.listener is not None else None
        files = (cfg.tls.cert, cfg.tls.key, cfg.tls.ca)
        material = live if live is not None and live.files == files else None
        if material is None:
            material = server_material(cfg.tls, builder.config_name)  # ConfigError naming the file
        # the identity header filter reads the sidecar's own ID from it (and, once this config
        # is live, the certificate expiry metric)
        builder.publish(INBOUND_TLS, material)
        app = inbound_routes.app_upstream(cfg)
        try:
            terminal = builder.terminal(inbound_routes.APP, app)
        except PluginError as e:
            raise PluginError(f"the inbound front cannot reach the app ({cfg.app}): {e}") from e
        explicit = []
        for spec in inbound_routes.routes(cfg):
            handler = builder.chain(
                self.traits, spec.name, inbound_routes.APP, terminal, upstream=app
            )
            m = spec.match
            explicit.append(
                ExplicitRoute(
                    Route(spec.name, inbound_routes.APP, handler),
                    m.path_prefix if m is not None else "/",  # the default route: everything
                    m.host if m is not None else None,
                    tuple(m.headers.items()) if m is not None else (),
                    None,  # paths reach the app unchanged
                )
            )
        return RouteTable({}, explicit), material, app

    def swap(self, routes: tuple[RouteTable, TlsMaterial, UpstreamConfig]) -> None:
        table, material, _ = routes
        if self.listener is None:
            cfg = self.ctx.config.inbound
            assert cfg is not None
            self.listener = InboundListener(cfg, table, self.ctx.metrics, material)
            self.listener.cap.limit = self.ctx.connection_cap(cfg.max_connections)
            self.listener.on_unrouted = functools.partial(self.ctx.on_unrouted, self.traits)
            return
        # new handshakes take the new files (if they moved), new calls the new routes
        self.listener.routes, self.listener.tls = table, material

    def upstreams(
        self, routes: tuple[RouteTable, TlsMaterial, UpstreamConfig]
    ) -> Mapping[str, UpstreamConfig]:
        return {inbound_routes.APP: routes[2]}

    async def start(self) -> None:
        assert self.listener is not None
        host, port = split_address(self._address)
        await self.listener.start(host, port)

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    @property
    def address(self) -> str:
        return f"{split_address(self._address)[0]}:{self.port}"

    def hold_for_app(self) -> None:
        pass  # peers are not the app: they stop at once (stop_accepting)

    def stop_accepting(self) -> None:
        if self.listener is not None:
            self.listener.stop_accepting()

    async def drain(self, grace: float) -> int:
        return 0 if self.listener is None else await self.listener.drain(grace)

    def app_activity(self) -> AppActivity:
        return AppActivity(0, 0, 0)  # peers, not the app


def _grpc_only(name: str, config: SidecarConfig) -> Handler:
    """The HTTP port's answer for a gRPC upstream: a clear 404 pointing at the gRPC port."""
    where = (
        f"the gRPC port ({config.grpc.address})"
        if config.grpc.enabled
        else "the gRPC port, which is disabled (grpc.enabled: false)"
    )
    error = f"upstream {name!r} speaks gRPC: call it through {where}"

    async def grpc_only(exchange: Exchange) -> Response:
        raise NoRoute(error)

    return grpc_only


def _http(ctx: FrontContext) -> HttpFront:
    return HttpFront(ctx)


def _grpc(ctx: FrontContext) -> GrpcFront | None:
    return GrpcFront(ctx) if ctx.config.grpc.enabled else None


def _inbound(ctx: FrontContext) -> InboundFront | None:
    cfg = ctx.config.inbound
    return InboundFront(ctx, cfg.address) if cfg is not None else None


@hookimpl(trylast=True)
def sidecar_register_fronts(registry: FrontRegistry) -> None:
    registry.add("http", _http)
    registry.add("grpc", _grpc)
    registry.add("inbound", _inbound)

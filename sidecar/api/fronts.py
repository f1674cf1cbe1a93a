"""Fronts: what accepts calls and hands each to a route's chain (the HTTP port, the gRPC port,
the inbound mTLS port, or a plugin's: an SSE gateway, a message-delivery loop).

A front is registered by name through ``sidecar_register_fronts``; its factory is called once
per running sidecar with a :class:`FrontContext` and returns the :class:`Front`, or ``None`` when
the config does not ask for it (``grpc.enabled: false``, no ``inbound``). The sidecar then, for
every front, in registration order:

1. ``compose(builder)`` builds the front's routes for the config (start-up, and each reload
   before anything changes): ``builder.chain(...)`` composes one route's filters around an
   upstream's adapter, for this front's :class:`~sidecar.api.FrontTraits`. Raise
   :class:`~sidecar.errors.ConfigError` to refuse the config;
2. ``swap(routes)`` makes them live: new calls take them, calls in flight finish on theirs;
3. ``start()`` listens (start-up only, once every lifespan is up);
4. on shutdown: fronts that face peers ``stop_accepting()`` at once; fronts that face the app
   ``hold_for_app()`` while it may still call out, then ``stop_accepting()``; all ``drain(grace)``
   and say how many calls they had to cut.
"""

from __future__ import annotations

__all__ = [
    "AppActivity",
    "Front",
    "FrontContext",
    "FrontFactory",
    "FrontRegistry",
    "RouteBuilder",
]

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar

from .registry import Registry

if TYPE_CHECKING:
    from ..chain import Handler
    from ..config.models import RouteConfig, SidecarConfig, UpstreamConfig
    from ..errors import SidecarError
    from ..exchange import Exchange
    from ..telemetry.metrics import Metrics
    from .runtime import ControlView
    from .traits import AdapterTraits, FrontTraits

R = TypeVar("R")


class AppActivity(NamedTuple):
    """What a front facing the app sees of it at one moment."""

    #: app connections open (0 where the server hides them: the grpcio server).
    connections: int
    #: calls in flight (HTTP: requests being received or answered; gRPC: calls running).
    in_flight: int
    #: connections opened plus calls started since the front started: only its changes
    #: matter (a call that began and ended between two looks still changes it).
    began: int


class RouteBuilder(Protocol):
    """What a front composes its routes with, for one config."""

    @property
    def config(self) -> SidecarConfig:
        """The config being composed (not yet live during a reload)."""

    @property
    def config_name(self) -> str:
        """The config file's name, for :class:`~sidecar.errors.ConfigProblem`."""

    def terminal(self, upstream_name: str, upstream: UpstreamConfig | None = None) -> Handler:
        """The adapter handler of ``upstream_name`` (``upstream``: settings of an upstream that
        is not in ``config.upstreams``, such as the inbound front's local app). Built once per
        composition; an adapter that fails raises ``PluginError`` or ``ConfigError``."""

    def publish(self, name: str, obj: object) -> None:
        """Make ``obj`` the resource ``name`` for this composition's filter factories
        (``RouteContext.resources``); it becomes the sidecar's resource only if the whole
        composition goes live, so a refused reload leaves the running one alone."""

    def adapter_traits(self, adapter: str) -> AdapterTraits:
        """The traits of the adapter registered as ``adapter`` (an upstream's ``adapter:``);
        a front picks the upstreams it serves by them (the gRPC port: ``statuses == "grpc"``)."""

    def chain(
        self,
        front: FrontTraits,
        route: str,
        upstream_name: str,
        terminal: Handler,
        *,
        upstream: UpstreamConfig | None = None,
        route_config: RouteConfig | None = None,
    ) -> Handler:
        """Every registered filter for route ``route`` of ``upstream_name`` on ``front``, around
        ``terminal``; ``route_config``'s overrides are merged into the upstream's settings."""


class Front(Protocol[R]):
    """One running front (see the module's lifecycle)."""

    #: what it is, as filters need to know it; ``traits.name`` is its name in metrics and logs.
    traits: FrontTraits
    #: ``"app"``: the app calls out through it; ``"peers"``: others call the app through it.
    faces: Literal["app", "peers"]

    def compose(self, builder: RouteBuilder) -> R:
        """This front's routes for ``builder.config``."""

    def swap(self, routes: R) -> None:
        """Make ``routes`` live for new calls."""

    def upstreams(self, routes: R) -> Mapping[str, UpstreamConfig]:
        """Upstreams its routes use that ``config.upstreams`` does not name (the inbound front's
        local app), so a reload keeps their connection pools."""

    async def start(self) -> None:
        """Listen (raise ``OSError`` naming the address when it cannot)."""

    @property
    def port(self) -> int:
        """The port it listens on (after :meth:`start`)."""

    @property
    def address(self) -> str:
        """``host:port`` it listens on, for the ready log line."""

    def hold_for_app(self) -> None:
        """Shutdown began but the app may still call: keep serving, end connections after
        their call."""

    def stop_accepting(self) -> None:
        """Accept no new connection or call."""

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for calls in flight, cut the rest; how many were cut."""

    def app_activity(self) -> AppActivity:
        """What it sees of the app now (fronts facing the app; the shutdown waits for it to go
        quiet). A front facing peers answers ``AppActivity(0, 0, 0)``."""


@dataclass(frozen=True)
class FrontContext:
    """What the sidecar lends a front when it builds it."""

    #: the running sidecar (a front hosting control services, as the gRPC port does, uses the
    #: control view).
    runtime: ControlView
    #: the config at start-up (its listener settings are not reloaded).
    config: SidecarConfig
    metrics: Metrics
    #: log a call no route of the front took (the access log's line for it): ``on_unrouted(
    #: front.traits, exchange, error, body_bytes_sent)``.
    on_unrouted: Callable[[FrontTraits, Exchange, SidecarError, int], None]
    #: the connection cap of a data front: ``configured``, or its share of the open-files limit.
    connection_cap: Callable[[int | None], int]


#: ``factory(ctx)`` builds the front, or returns ``None`` when the config does not ask for it.
FrontFactory = Callable[[FrontContext], "Front[Any] | None"]


class FrontRegistry(Registry[FrontFactory]):
    """Front factories by name, started in registration order."""

    kind = "front"

    def add(self, name: str, factory: FrontFactory) -> None:
        self._add(name, factory)

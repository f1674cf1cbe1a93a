"""Registries that registration hooks fill, and the contexts factories receive.

A registry records, for every name, what was registered and which plugin registered it; a second
registration of a name raises :class:`~sidecar.errors.RegistryConflict` naming both owners (tox's
``register.add_run_env`` habit). The plugin host sets ``owner`` before calling each plugin and
closes the registries once every plugin was called, so nothing registers while serving.

What a registry stores is what the plugin gave, wrapped where the sidecar must be able to name the
plugin later: filter factories remember the code of the filters they build (so an error raised in
one is logged with its plugin's name), lifespans log a failing exit with their names, and admin
handlers answer a 500 naming their plugin instead of dying in aiohttp's generic handler. None of
these wrappers is on the request path of the data plane.
"""

from __future__ import annotations

__all__ = [
    "ORDER_ACCESS_LOG",
    "ORDER_AUTH",
    "ORDER_CIRCUIT_BREAKER",
    "ORDER_CONCURRENCY",
    "ORDER_DEFAULT",
    "ORDER_GLOBAL_RATE_LIMIT",
    "ORDER_IDENTITY_HEADER",
    "ORDER_METRICS",
    "ORDER_PEER_ALLOW",
    "ORDER_RATE_LIMIT",
    "ORDER_REQUEST_HEADERS",
    "ORDER_RESCUE",
    "ORDER_RETRY",
    "ORDER_TIMEOUT",
    "ORDER_TRACING",
    "ORDER_UPSTREAM_SPAN",
    "ORDER_VERIFY_HMAC",
    "Adapter",
    "AdapterRegistry",
    "AdapterServices",
    "AdminHandler",
    "AdminRouteRegistry",
    "ConfigRegistry",
    "FilterFactory",
    "FilterRegistry",
    "LifespanFactory",
    "LifespanRegistry",
    "Registration",
    "RouteContext",
]

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from pydantic import BaseModel

from .errors import RegistryConflict
from .outcomes import Classifier, classify_http

if TYPE_CHECKING:
    from aiohttp import web

    from .app import Sidecar
    from .chain import Filter, Handler
    from .config.models import RouteConfig, SidecarConfig, UpstreamConfig
    from .exchange import Exchange, Response
    from .telemetry.metrics import Metrics

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("sidecar.plugins")

# Where built-in filters sit in every chain (lower is outer). Plugins pick a number between;
# the reasons for this order are in sidecar/filters/__init__.py.
ORDER_RESCUE = 0
ORDER_ACCESS_LOG = 100
ORDER_TRACING = 200
ORDER_METRICS = 300
ORDER_PEER_ALLOW = 310
ORDER_VERIFY_HMAC = 320
ORDER_RATE_LIMIT = 350
ORDER_GLOBAL_RATE_LIMIT = 360
ORDER_CONCURRENCY = 400
ORDER_DEFAULT = 500
ORDER_TIMEOUT = 800
ORDER_RETRY = 820
ORDER_CIRCUIT_BREAKER = 840
ORDER_AUTH = 860
ORDER_UPSTREAM_SPAN = 880
ORDER_IDENTITY_HEADER = 890
ORDER_REQUEST_HEADERS = 900


@dataclass(frozen=True, slots=True)
class Registration(Generic[T]):
    name: str
    item: T
    owner: str
    order: int = 0


class _Registry(Generic[T]):
    kind: ClassVar[str] = "item"

    def __init__(self) -> None:
        #: the plugin whose hook is being called; set by the plugin host.
        self.owner = "<unknown>"
        self.closed = False
        self._items: dict[str, Registration[T]] = {}

    def _add(self, name: str, item: T, order: int = 0) -> None:
        if self.closed:
            raise RuntimeError(
                f"{self.kind} {name!r}: registries are filled only inside registration hooks"
            )
        prior = self._items.get(name)
        if prior is not None:
            raise RegistryConflict(
                f"{self.kind} {name!r} registered twice: by plugin {prior.owner!r} "
                f"and by plugin {self.owner!r}"
            )
        self._items[name] = Registration(name, item, self.owner, order)

    def close(self) -> None:
        """Refuse any later ``add`` (called once every plugin registered)."""
        self.closed = True

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self._items[name].item

    def registrations(self) -> list[Registration[T]]:
        return list(self._items.values())

    def by_owner(self, owner: str) -> list[Registration[T]]:
        return [r for r in self._items.values() if r.owner == owner]


class ConfigRegistry(_Registry[type[BaseModel]]):
    """``plugins.<name>`` sections and the models that validate them."""

    kind = "config section"

    def add(self, name: str, model: type[BaseModel]) -> None:
        self._add(name, model)


@dataclass(frozen=True)
class AdapterServices:
    """What the sidecar lends every adapter instance."""

    metrics: Metrics
    log: logging.Logger


class Adapter:
    """Base class of protocol adapters.

    One instance per running sidecar. :meth:`handler` builds the terminal handler of one upstream
    for the current config; it is called at start-up and again for each reload, so an adapter keeps
    connection pools keyed by what they depend on and closes the ones no config uses any more in
    :meth:`retire`.
    """

    #: validates ``upstreams.<name>.options`` for upstreams using this adapter.
    options_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, services: AdapterServices) -> None:
        self.services = services

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        raise NotImplementedError

    def classifier(self, name: str, upstream: UpstreamConfig) -> Classifier:
        """How this adapter's calls ended, as condition names retry and the breaker match
        (:mod:`sidecar.outcomes`). The default knows the sidecar's transport errors and HTTP
        statuses; protocols with their own failure signals override it."""
        return classify_http

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        """Close what no upstream in ``live`` uses any more (after a reload drained)."""

    def describe(self, name: str) -> dict[str, Any]:
        """State of one upstream for ``/upstreams`` (pool sizes, health...)."""
        return {}

    def health(self, name: str) -> bool | None:
        """Whether the upstream can be reached now (``False``: a channel in transient failure),
        ``None`` when the adapter does not track it. Read by :mod:`sidecar.health`, never per
        call."""
        return None

    async def aclose(self) -> None:
        """Close every connection (shutdown)."""


class AdapterRegistry(_Registry[type[Adapter]]):
    """Adapter classes by the name ``upstreams.<u>.adapter`` uses."""

    kind = "adapter"

    def add(self, name: str, adapter: type[Adapter]) -> None:
        self._add(name, adapter)


@dataclass(frozen=True)
class RouteContext:
    """What a filter factory sees when a route's chain is composed."""

    route: str
    upstream_name: str
    upstream: UpstreamConfig
    config: SidecarConfig
    metrics: Metrics
    #: the listener whose route table this chain belongs to (``http``; ``inbound``, ``grpc`` later).
    listener: str = "http"
    #: the explicit route, ``None`` for the implicit ``/<upstream>/`` and ``Host`` routes.
    route_config: RouteConfig | None = None
    plugin_sections: Mapping[str, BaseModel] = field(default_factory=dict)
    #: the ``sidecar_rescue`` hook caller, ``None`` when no plugin implements it.
    rescue_hook: Callable[[Exchange, BaseException], Response | None] | None = None
    #: names the plugin whose code raised an error (``{"plugin": ..., "filter": ...}``), for logs.
    blame: Callable[[BaseException], dict[str, str] | None] | None = None
    #: the upstream adapter's classifier (:mod:`sidecar.outcomes`).
    classify: Classifier = classify_http
    #: state shared by every route of the upstream and kept across reloads (see :meth:`shared`).
    share: Callable[[str, str, Hashable, Callable[[], Any]], Any] | None = None
    #: per-sidecar objects that lifespans publish in ``sidecar.resources`` (the live rate-limit
    #: backends...), read by factories; empty without a sidecar (unit tests pass their own).
    resources: Mapping[str, Any] = field(default_factory=dict)

    def shared(self, kind: str, key: Hashable, factory: Callable[[], T]) -> T:
        """One object per (``kind``, upstream) for all routes of the upstream, kept across
        reloads while ``key`` (typically the policy's config) stays equal: a circuit breaker's
        state survives a reload that does not change it. Without a sidecar (unit tests), a new
        object each time."""
        if self.share is None:
            return factory()
        result: T = self.share(kind, self.upstream_name, key, factory)
        return result

    @overload
    def plugin_config(self, name: str) -> Any: ...

    @overload
    def plugin_config(self, name: str, model: type[M]) -> M: ...

    def plugin_config(self, name: str, model: type[M] | None = None) -> Any:
        """The validated ``plugins.<name>`` section (the declared model's defaults if absent).

        With ``model``, the result is typed and checked: ``ctx.plugin_config("hello", Hello)``.
        """
        section = self.plugin_sections.get(name)
        if model is not None and not isinstance(section, model):
            raise RuntimeError(
                f"no config section {name!r} of type {model.__name__} was declared "
                f"(declare it in sidecar_declare_config)"
            )
        return section


FilterFactory = Callable[[RouteContext], "Filter | None"]


def code_of(obj: object) -> CodeType | None:
    """The code object that runs when ``obj`` is called (function, partial or callable object)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    code = getattr(obj, "__code__", None)
    if code is None:
        code = getattr(inspect.getattr_static(type(obj), "__call__", None), "__code__", None)
    return code if isinstance(code, CodeType) else None


class FilterRegistry(_Registry[FilterFactory]):
    """Filter factories and their places in the chain (``order``, lower is outer)."""

    kind = "filter"

    def __init__(self) -> None:
        super().__init__()
        #: code of each filter a factory built → (plugin, filter name). Filled as chains are
        #: composed, read only when a call failed; closures share code, so it stays small.
        self.code_owners: dict[CodeType, tuple[str, str]] = {}

    def add(self, name: str, factory: FilterFactory, order: int = ORDER_DEFAULT) -> None:
        self._add(name, self._recording(name, factory), order)

    def _recording(self, name: str, factory: FilterFactory) -> FilterFactory:
        owner, codes = self.owner, self.code_owners

        @functools.wraps(factory)
        def build(ctx: RouteContext) -> Filter | None:
            f = factory(ctx)
            if f is not None:
                code = code_of(f)
                if code is not None:
                    codes[code] = (owner, name)
            return f

        return build

    def ordered(self) -> list[Registration[FilterFactory]]:
        return sorted(self._items.values(), key=lambda r: r.order)


LifespanFactory = Callable[["Sidecar"], AbstractAsyncContextManager[Any]]


class _NamedLifespan(AbstractAsyncContextManager[Any]):
    """A plugin's lifespan whose failing exit is logged with its names, not raised."""

    def __init__(self, inner: AbstractAsyncContextManager[Any], owner: str, name: str) -> None:
        self.inner, self.owner, self.name = inner, owner, name

    async def __aenter__(self) -> Any:
        return await self.inner.__aenter__()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return await self.inner.__aexit__(et, e, tb)
        except Exception:
            # shutdown goes on: the other lifespans and the admin port still need closing
            log.exception(
                f"plugin {self.owner!r}: lifespan {self.name!r} failed at shutdown",
                extra={"fields": {"plugin": self.owner, "lifespan": self.name}},
            )
            return False


class LifespanRegistry(_Registry[LifespanFactory]):
    """Async context managers entered at start-up, exited in reverse after draining."""

    kind = "lifespan"

    def add(self, name: str, factory: LifespanFactory) -> None:
        owner = self.owner

        def named(sidecar: Sidecar) -> AbstractAsyncContextManager[Any]:
            return _NamedLifespan(factory(sidecar), owner, name)

        self._add(name, named)


AdminHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class AdminRouteRegistry(_Registry[AdminHandler]):
    """Admin-port routes, keyed ``"METHOD /path"``."""

    kind = "admin route"

    def add(self, method: str, path: str, handler: AdminHandler) -> None:
        key = f"{method.upper()} {path}"
        self._add(key, _guarded(handler, self.owner, key))


def _guarded(handler: AdminHandler, owner: str, key: str) -> AdminHandler:
    from aiohttp import web  # imported when an admin route is added; the data path never is

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # aiohttp's way of answering 404, redirects...
        except Exception:
            log.exception(
                f"plugin {owner!r}: admin route {key!r} failed",
                extra={"fields": {"plugin": owner, "route": key}},
            )
            return web.json_response({"error": "internal", "plugin": owner}, status=500)

    return guarded

"""Registries that registration hooks fill, and the contexts factories receive.

A registry records, for every name, what was registered and which plugin registered it; a second
registration of a name raises :class:`~sidecar.errors.RegistryConflict` naming both owners (tox's
``register.add_run_env`` habit). The plugin host sets ``owner`` before calling each plugin.
"""

from __future__ import annotations

__all__ = [
    "ORDER_ACCESS_LOG",
    "ORDER_DEFAULT",
    "ORDER_METRICS",
    "ORDER_RESCUE",
    "ORDER_TIMEOUT",
    "Adapter",
    "AdapterRegistry",
    "AdapterServices",
    "AdminRouteRegistry",
    "ConfigRegistry",
    "FilterFactory",
    "FilterRegistry",
    "LifespanRegistry",
    "Registration",
    "RouteContext",
]

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from .errors import RegistryConflict

if TYPE_CHECKING:
    from aiohttp import web

    from .app import Sidecar
    from .chain import Filter, Handler
    from .config.models import RouteConfig, SidecarConfig, UpstreamConfig
    from .exchange import Exchange, Response
    from .telemetry.metrics import Metrics

T = TypeVar("T")

# Where built-in filters sit in every chain (lower is outer). Plugins pick a number between;
# the reasons for this order are in sidecar/filters/__init__.py.
ORDER_RESCUE = 0
ORDER_ACCESS_LOG = 100
ORDER_METRICS = 300
ORDER_DEFAULT = 500
ORDER_TIMEOUT = 800
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
        self.owner = "<unknown>"
        self._items: dict[str, Registration[T]] = {}

    def _add(self, name: str, item: T, order: int = 0) -> None:
        prior = self._items.get(name)
        if prior is not None:
            raise RegistryConflict(
                f"{self.kind} {name!r} registered twice: by plugin {prior.owner!r} "
                f"and by plugin {self.owner!r}"
            )
        self._items[name] = Registration(name, item, self.owner, order)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self._items[name].item

    def registrations(self) -> list[Registration[T]]:
        return list(self._items.values())

    def by_owner(self, owner: str) -> list[str]:
        return [r.name for r in self._items.values() if r.owner == owner]


class ConfigRegistry(_Registry[type[BaseModel]]):
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

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        """Close what no upstream in ``live`` uses any more (after a reload drained)."""

    def describe(self, name: str) -> dict[str, Any]:
        """State of one upstream for ``/upstreams`` (pool sizes, health...)."""
        return {}

    async def aclose(self) -> None:
        """Close every connection (shutdown)."""


class AdapterRegistry(_Registry[type[Adapter]]):
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

    def plugin_config(self, name: str) -> Any:
        """The validated ``plugins.<name>`` section (the declared model's defaults if absent)."""
        return self.plugin_sections.get(name)


FilterFactory = Callable[[RouteContext], "Filter | None"]


class FilterRegistry(_Registry[FilterFactory]):
    kind = "filter"

    def add(self, name: str, factory: FilterFactory, order: int = ORDER_DEFAULT) -> None:
        self._add(name, factory, order)

    def ordered(self) -> list[Registration[FilterFactory]]:
        return sorted(self._items.values(), key=lambda r: r.order)


LifespanFactory = Callable[["Sidecar"], AbstractAsyncContextManager[Any]]


class LifespanRegistry(_Registry[LifespanFactory]):
    kind = "lifespan"

    def add(self, name: str, factory: LifespanFactory) -> None:
        self._add(name, factory)


AdminHandler = Callable[["web.Request"], Any]


class AdminRouteRegistry(_Registry[AdminHandler]):
    kind = "admin route"

    def add(self, method: str, path: str, handler: AdminHandler) -> None:
        self._add(f"{method.upper()} {path}", handler)

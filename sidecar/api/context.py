"""What a filter factory sees when a route's chain is composed: :class:`RouteContext`."""

from __future__ import annotations

__all__ = ["FilterFactory", "RouteContext"]

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel

from ..outcomes import Classifier, classify_http
from .http_client import HTTP_CLIENT, UpstreamClients
from .shared import SharedKey, SharedStateBuilder
from .traits import AdapterTraits, FrontTraits

if TYPE_CHECKING:
    from ..chain import Filter, Handler
    from ..config.models import RouteConfig, SidecarConfig, UpstreamConfig
    from ..exchange import Exchange, Response
    from ..telemetry.metrics import Metrics

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: The front of a context built without one (unit tests): the HTTP port's traits.
_HTTP = FrontTraits("http")


@dataclass(frozen=True)
class RouteContext:
    """One route of one front, as its chain is composed (start-up and each reload)."""

    route: str
    upstream_name: str
    #: the upstream's settings with the route's overrides merged in (read only this).
    upstream: UpstreamConfig
    config: SidecarConfig
    metrics: Metrics
    #: what the front accepting this route's calls is (:class:`FrontTraits`).
    front: FrontTraits = _HTTP
    #: what the upstream's adapter is (:class:`AdapterTraits`).
    adapter: AdapterTraits = AdapterTraits()
    #: the explicit route, ``None`` for the implicit ``/<upstream>/`` and ``Host`` routes.
    route_config: RouteConfig | None = None
    plugin_sections: Mapping[str, BaseModel] = field(default_factory=dict)
    #: the ``sidecar_rescue`` hook caller, ``None`` when no plugin implements it.
    rescue_hook: Callable[[Exchange, BaseException], Response | None] | None = None
    #: names the plugin whose code raised an error (``{"plugin": ..., "filter": ...}``), for logs.
    blame: Callable[[BaseException], dict[str, str] | None] | None = None
    #: the upstream adapter's classifier (:mod:`sidecar.outcomes`).
    classify: Classifier = classify_http
    #: collects the per-upstream state of the table being composed (see :meth:`shared`).
    shared_state: SharedStateBuilder | None = None
    #: per-sidecar objects that lifespans publish (``RuntimeView.resources``: the live
    #: rate-limit backends, the tracer...), read by factories; empty in unit tests.
    resources: Mapping[str, Any] = field(default_factory=dict)
    #: the config file's name as problems name it (``sidecar.yaml``): a factory that finds a
    #: setting of its plugin section unusable (a secret file it cannot read) raises
    #: ``ConfigError([ConfigProblem(ctx.config_name, "plugins.<name>.<key>", reason)])``.
    config_name: str = "<config>"

    @property
    def listener(self) -> str:
        """The front's name (the ``listener`` label of metrics and logs)."""
        return self.front.name

    def shared(
        self,
        key: SharedKey[T],
        settings: Hashable,
        factory: Callable[[], T],
        *,
        per_route: bool = False,
    ) -> T:
        """One object per (``key``, upstream) for all routes of the upstream (per route of it
        with ``per_route``), kept across reloads while ``settings`` (typically the policy's
        config) stay equal: a circuit breaker's state survives a reload that does not change
        it. Without a sidecar (unit tests), a new object each time."""
        if self.shared_state is None:
            return factory()
        route = self.route if per_route else None
        return self.shared_state.share(key, self.upstream_name, settings, factory, route)

    def http_client(self) -> Handler | None:
        """The sidecar's HTTP/1.1 client toward this route's upstream (:mod:`.http_client`:
        its pool, ``tls``, timeouts), for a plugin's adapter to send through; ``None`` without
        a running sidecar (unit tests, ``sidecar check``) or with the built-in ``http`` adapter
        disabled. Ask for it in a filter factory (when the chain is composed), never per call."""
        clients: UpstreamClients | None = self.resources.get(HTTP_CLIENT)
        if clients is None:
            return None
        return clients.lend(self.upstream_name, self.upstream)

    @overload
    def plugin_config(self, name: str) -> Any: ...

    @overload
    def plugin_config(self, name: str, model: type[M]) -> M: ...

    def plugin_config(self, name: str, model: type[M] | None = None) -> Any:
        """The validated ``plugins.<name>`` section (the declared model's defaults if absent).

        With ``model``, the result is typed and checked: ``ctx.plugin_config("hello", Hello)``.
        """
        return section_of(self.plugin_sections, name, model)


def section_of(sections: Mapping[str, BaseModel], name: str, model: type[M] | None) -> Any:
    """``plugins.<name>`` from the validated sections, checked against ``model`` if given."""
    section = sections.get(name)
    if model is not None and not isinstance(section, model):
        got = "none" if section is None else f"a {type(section).__name__}"
        raise RuntimeError(
            f"config section {name!r}: expected a {model.__name__}, got {got} (declare it in "
            f"sidecar_declare_config; in a test, give the plugin to make_route_context(plugins=))"
        )
    return section


#: ``factory(ctx)`` builds a route's filter, or ``None`` when it has nothing to do there.
FilterFactory = Callable[[RouteContext], "Filter | None"]

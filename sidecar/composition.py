"""How one config becomes every front's routes: the sidecar's :class:`~sidecar.api.RouteBuilder`.

A :class:`Composition` is made for one config (start-up, each reload, ``sidecar check``). Each
front asks it for adapter handlers (built once per upstream per composition) and for chains: every
registered filter, in phase order, around an adapter handler, for the front's traits. It also
collects the per-upstream shared state the filters ask for; the sidecar keeps that state only if
the whole composition succeeds, so a refused reload leaves the running one alone.
"""

from __future__ import annotations

__all__ = ["Composition"]

import dataclasses
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .api import Adapter, AdapterTraits, FrontTraits, RouteContext
from .api.shared import SharedState, SharedStateBuilder
from .cassettes.handler import cassette_handler
from .chain import Filter, Handler, compose
from .config.models import RouteConfig
from .errors import ConfigError, ConfigProblem, PluginError

if TYPE_CHECKING:
    from .config.models import SidecarConfig, UpstreamConfig
    from .exchange import Exchange, Response
    from .plugins import PluginHost
    from .telemetry.metrics import Metrics


class Composition:
    """The route builder of one config (see the module docstring)."""

    def __init__(
        self,
        config: SidecarConfig,
        config_name: str,
        sections: Mapping[str, BaseModel],
        *,
        plugin_host: PluginHost,
        adapters: Mapping[str, Adapter],
        metrics: Metrics,
        resources: Mapping[str, Any],
        live: SharedState,
    ) -> None:
        self._config, self._config_name = config, config_name
        self.sections = sections
        self.host = plugin_host
        self.adapters = adapters
        self.metrics = metrics
        #: what fronts published for this composition (see :meth:`publish`), over the live
        #: resources; the sidecar adopts it when the composition goes live
        self.published: dict[str, Any] = {}
        self.resources = ChainMap(self.published, dict(resources))
        #: the shared state of the routes being composed (kept if the composition succeeds)
        self.shared = SharedStateBuilder(live)
        self._terminals: dict[str, Handler] = {}
        self._filters = plugin_host.registries.filters.ordered()
        self._rescue: Callable[[Exchange, BaseException], Response | None] | None = (
            plugin_host.rescue_hook()
        )

    @property
    def config(self) -> SidecarConfig:
        return self._config

    @property
    def config_name(self) -> str:
        return self._config_name

    def publish(self, name: str, obj: object) -> None:
        self.published[name] = obj

    def adapter_traits(self, adapter: str) -> AdapterTraits:
        running = self.adapters.get(adapter)
        return type(running).traits if running is not None else AdapterTraits()

    def _adapter(self, upstream: UpstreamConfig) -> Adapter:
        adapter = self.adapters.get(upstream.adapter)
        if adapter is None:
            raise PluginError(f"the {upstream.adapter!r} adapter is disabled")
        return adapter

    def terminal(self, upstream_name: str, upstream: UpstreamConfig | None = None) -> Handler:
        have = self._terminals.get(upstream_name)
        if have is not None:
            return have
        up = upstream if upstream is not None else self._config.upstreams[upstream_name]
        adapter = self._adapter(up)
        try:
            handler = adapter.handler(upstream_name, up)
            if up.cassette is not None:  # below every filter: it sees the call as sent
                handler = cassette_handler(
                    upstream_name, up.cassette, handler, type(adapter).traits
                )
        except (ConfigError, PluginError, OSError):
            raise  # OSError: a file the front names in the config (certificates)
        except ValueError as e:
            key = getattr(e, "key", None)  # a setting no connection can honour, and where
            if not isinstance(key, str):
                raise self._failed(up, upstream_name, e) from e
            where = f"upstreams.{upstream_name}.{key}"
            raise ConfigError([ConfigProblem(self._config_name, where, str(e))]) from None
        except Exception as e:
            raise self._failed(up, upstream_name, e) from e
        self._terminals[upstream_name] = handler
        return handler

    @staticmethod
    def _failed(up: UpstreamConfig, upstream_name: str, e: Exception) -> PluginError:
        return PluginError(
            f"adapter {up.adapter!r} failed to build upstream {upstream_name!r}: "
            f"{type(e).__name__}: {e}"
        )

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
        ctx = self.context(front, route, upstream_name, upstream, route_config)
        filters: list[Filter] = []
        for reg in self._filters:
            self.shared.owner = reg.owner  # named if its shared-state key clashes
            try:
                f = reg.item(ctx)
            except ConfigError:
                raise
            except LookupError as e:
                # a secret reference that cannot be resolved says where under the upstream it
                # is (``key_path``); any other KeyError is the plugin's bug (below)
                key = getattr(e, "key_path", None)
                if not isinstance(key, str):
                    raise self._filter_failed(reg.owner, reg.name, route, e) from e
                where = f"upstreams.{upstream_name}.{key}"
                raise ConfigError([ConfigProblem(self._config_name, where, str(e))]) from None
            except Exception as e:
                raise self._filter_failed(reg.owner, reg.name, route, e) from e
            if f is not None:
                filters.append(f)
        return compose(filters, terminal)

    @staticmethod
    def _filter_failed(owner: str, name: str, route: str, e: Exception) -> PluginError:
        return PluginError(
            f"plugin {owner!r}: filter {name!r} failed for route {route!r}: {type(e).__name__}: {e}"
        )

    def context(
        self,
        front: FrontTraits,
        route: str,
        upstream_name: str,
        upstream: UpstreamConfig | None = None,
        route_config: RouteConfig | None = None,
    ) -> RouteContext:
        """What each filter factory of one route gets."""
        up = upstream if upstream is not None else self._config.upstreams[upstream_name]
        if route_config is not None:
            # per-route overrides are merged once, here: filters only ever read ``ctx.upstream``
            updates = {
                key: value
                for key in RouteConfig.OVERRIDES
                if (value := getattr(route_config, key)) is not None
            }
            if updates:
                up = up.model_copy(update=updates)
        adapter = self._adapter(up)
        return RouteContext(
            route=route,
            upstream_name=upstream_name,
            upstream=up,
            config=self._config,
            metrics=self.metrics,
            front=front,
            adapter=_traits(adapter, up),
            route_config=route_config,
            plugin_sections=self.sections,
            rescue_hook=self._rescue,
            blame=self.host.blame,
            classify=adapter.classifier(upstream_name, up),
            shared_state=self.shared,
            resources=self.resources,
            config_name=self._config_name,
        )


def _traits(adapter: Adapter, up: UpstreamConfig) -> AdapterTraits:
    """The adapter's traits, as filters see them on this upstream's routes: a cassette writes
    each request to a file, so it shows requests, and the filters that inject secrets mark them
    for it to redact (:mod:`sidecar.cassettes.handler`)."""
    traits = type(adapter).traits
    if up.cassette is not None and not traits.shows_requests:
        return dataclasses.replace(traits, shows_requests=True)
    return traits

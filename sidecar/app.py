"""The :class:`Sidecar`: owns the plugin host, the frozen config, listeners and adapters.

It composes every route's handler once (start-up and each reload), starts the admin port and the
HTTP listener, swaps the route table on reload, and drains on shutdown. Several sidecars can run
in one process (tests do): nothing here is module-global; each has its own metrics registry.
"""

from __future__ import annotations

__all__ = ["ReloadResult", "Sidecar"]

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

from pydantic import BaseModel

from . import fdlimit
from .admin import AdminServer
from .api import (
    Adapter,
    AdapterServices,
    FrontTraits,
    Registries,
    ReloadResult,
    RouteContext,
    SharedState,
)
from .api.runtime import State
from .api.shared import SharedStateBuilder
from .app_quiet import wait_for_quiet_app
from .chain import Filter, Handler, compose
from .config import (
    DEFAULT_CONFIG_NAME,
    SidecarConfig,
    load_data,
    validate_data,
    validate_plugin_sections,
)
from .config.changes import removes_every_upstream, split_changes
from .config.models import RouteConfig, UpstreamConfig
from .config.types import split_address
from .errors import ConfigError, ConfigProblem, NoRoute, PluginError, SidecarError
from .exchange import Exchange, Response
from .filters import access_log
from .grpc.adapter import GRPC_ADAPTER
from .grpc.channels import ChannelConfigError
from .grpc.dispatch import GRPC_FRONT
from .grpc.h2_listener import H2GrpcListener
from .grpc.listener import GrpcListener
from .grpc.routes import GrpcRoutes
from .health import UpstreamHealthCollector
from .listeners import inbound_routes
from .listeners.http import HTTP_FRONT, HttpListener
from .listeners.inbound import INBOUND_FRONT, InboundListener
from .plugins import PluginHost, make_plugin_host
from .resilience.views import PolicyStateCollector, describe_policies
from .routing import ExplicitRoute, Route, RouteTable
from .telemetry.metrics import Metrics
from .tls.contexts import server_material
from .tls.identity import RESOURCE as INBOUND_TLS
from .tls.material import TlsMaterial

log = logging.getLogger("sidecar")


class Sidecar:
    """One running sidecar. ``async with Sidecar(config) as s:`` starts and drains it."""

    def __init__(
        self,
        config: SidecarConfig,
        *,
        config_path: str | None = None,
        plugin_host: PluginHost | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.config_name = config_path or DEFAULT_CONFIG_NAME
        self.plugin_host = plugin_host or make_plugin_host(config.plugins.disabled)
        self.metrics = Metrics()
        #: running out of file handles: counted, logged once per episode
        self.exhaustion = fdlimit.Exhaustion(
            lambda where: self.metrics.open_files_exhausted.labels(where).inc()
        )
        self.state: State = "starting"
        #: monotonic time this sidecar was created (``uptime``).
        self.created = time.monotonic()
        self.adapters: dict[str, Adapter] = {}
        self.plugin_sections: dict[str, BaseModel] = {}
        self.http: HttpListener | None = None
        #: the gRPC egress listener (``grpc``), unless ``grpc.enabled`` is false.
        self.grpc: GrpcListener | H2GrpcListener | None = None
        #: the mTLS listener in front of the app (``inbound``), when configured.
        self.inbound: InboundListener | None = None
        self.admin: AdminServer | None = None
        self._stack = AsyncExitStack()
        self._reload_lock = asyncio.Lock()
        self.stopped = asyncio.Event()
        # per-upstream policy state (breakers, limiters) of the live table, and of the one
        # being composed
        self._shared = SharedState()
        self._shared_next = SharedStateBuilder(self._shared)
        #: objects lifespans publish for filter factories (``RouteContext.resources``)
        self.resources: dict[str, Any] = {}
        # their gauges (circuit state, concurrency in flight...) are read when /metrics is scraped
        self.metrics.registry.register(PolicyStateCollector(lambda: self._shared))
        self.metrics.registry.register(UpstreamHealthCollector(self))

    # --- composition -------------------------------------------------------------------------

    def _validate(self, config: SidecarConfig) -> dict[str, BaseModel]:
        return validate_plugin_sections(config, self.plugin_host.schemas(), self.config_name)

    def _chain(self, ctx: RouteContext, terminal: Handler) -> Handler:
        filters: list[Filter] = []
        for reg in self.plugin_host.registries.filters.ordered():
            try:
                f = reg.item(ctx)
            except ConfigError:
                raise
            except LookupError as e:  # a secret reference that cannot be resolved
                # a filter may say where under the upstream the problem is (``key_path``)
                where = f"upstreams.{ctx.upstream_name}"
                key = getattr(e, "key_path", None)
                raise ConfigError(
                    [ConfigProblem(self.config_name, f"{where}.{key}" if key else where, str(e))]
                ) from None
            except Exception as e:
                raise PluginError(
                    f"plugin {reg.owner!r}: filter {reg.name!r} failed for route {ctx.route!r}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            if f is not None:
                filters.append(f)
        return compose(filters, terminal)

    def _context(
        self,
        config: SidecarConfig,
        sections: dict[str, BaseModel],
        route: str,
        upstream: str,
        route_config: RouteConfig | None = None,
        *,
        up: UpstreamConfig | None = None,
        front: FrontTraits = HTTP_FRONT,
    ) -> RouteContext:
        if up is None:
            up = config.upstreams[upstream]
        if route_config is not None:
            # per-route overrides are merged once, here: filters only ever read ``ctx.upstream``
            updates = {
                key: value
                for key in RouteConfig.OVERRIDES
                if (value := getattr(route_config, key)) is not None
            }
            if updates:
                up = up.model_copy(update=updates)
        return RouteContext(
            route=route,
            upstream_name=upstream,
            upstream=up,
            config=config,
            metrics=self.metrics,
            front=front,
            adapter=type(self.adapters[up.adapter]).traits,
            route_config=route_config,
            plugin_sections=sections,
            rescue_hook=self.plugin_host.rescue_hook(),
            blame=self.plugin_host.blame,
            classify=self.adapters[up.adapter].classifier(upstream, up),
            shared_state=self._shared_next,
            resources=self.resources,
        )

    def _compose(self, config: SidecarConfig, sections: dict[str, BaseModel]) -> RouteTable:
        self._shared_next = SharedStateBuilder(self._shared)
        terminals: dict[str, Handler] = {}
        by_upstream: dict[str, Route] = {}
        for name, up in config.upstreams.items():
            if up.adapter == GRPC_ADAPTER:
                # gRPC upstreams are the gRPC port's (_compose_grpc); here they answer clearly
                by_upstream[name] = Route(name, name, _grpc_only(name, config))
                continue
            adapter = self.adapters[up.adapter]
            try:
                terminals[name] = adapter.handler(name, up)
            except Exception as e:
                raise PluginError(
                    f"adapter {up.adapter!r} failed to build upstream {name!r}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            ctx = self._context(config, sections, name, name)
            by_upstream[name] = Route(name, name, self._chain(ctx, terminals[name]))
        explicit = []
        for i, rc in enumerate(config.routes):
            if rc.upstream not in terminals:
                continue  # a route to a gRPC upstream: on the gRPC port only
            rname = rc.name or f"route-{i}"
            ctx = self._context(config, sections, rname, rc.upstream, rc)
            route = Route(rname, rc.upstream, self._chain(ctx, terminals[rc.upstream]))
            explicit.append(ExplicitRoute.of(route, rc))
        return RouteTable(by_upstream, explicit)

    def _compose_grpc(self, config: SidecarConfig, sections: dict[str, BaseModel]) -> GrpcRoutes:
        """The gRPC port's routes: one per upstream with ``adapter: grpc`` (reached by its
        ``services`` or by an authority naming it), and the explicit routes to them; each chain
        composed for the ``grpc`` listener (rescue answers in gRPC terms)."""
        terminals: dict[str, Handler] = {}
        by_upstream: dict[str, Route] = {}
        services: dict[str, str] = {}
        for name, up in config.upstreams.items():
            if up.adapter != GRPC_ADAPTER:
                if up.services:
                    raise ConfigError(
                        [
                            ConfigProblem(
                                self.config_name,
                                f"upstreams.{name}.services",
                                f"gRPC services are routed to upstreams with adapter: "
                                f"{GRPC_ADAPTER}; this one uses {up.adapter!r}",
                            )
                        ]
                    )
                continue
            adapter = self.adapters.get(GRPC_ADAPTER)
            if adapter is None:
                raise PluginError(f"upstream {name!r} needs the grpc adapter, which is disabled")
            try:
                terminals[name] = adapter.handler(name, up)
            except ChannelConfigError as e:
                raise ConfigError(
                    [ConfigProblem(self.config_name, f"upstreams.{name}.{e.key}", str(e))]
                ) from None
            except OSError as e:  # a certificate file
                raise ConfigError(
                    [ConfigProblem(self.config_name, f"upstreams.{name}.tls", str(e))]
                ) from None
            except Exception as e:
                raise PluginError(
                    f"adapter {up.adapter!r} failed to build upstream {name!r}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            ctx = self._context(config, sections, name, name, front=GRPC_FRONT)
            by_upstream[name] = Route(name, name, self._chain(ctx, terminals[name]))
            services.update(dict.fromkeys(up.services, name))
        explicit = []
        for i, rc in enumerate(config.routes):
            if rc.upstream not in terminals:
                continue
            rname = rc.name or f"route-{i}"
            ctx = self._context(config, sections, rname, rc.upstream, rc, front=GRPC_FRONT)
            route = Route(rname, rc.upstream, self._chain(ctx, terminals[rc.upstream]))
            explicit.append(ExplicitRoute.of(route, rc))
        return GrpcRoutes(by_upstream, services, explicit)

    def _compose_inbound(
        self, config: SidecarConfig, sections: dict[str, BaseModel]
    ) -> tuple[RouteTable, TlsMaterial] | None:
        """The inbound listener's routes, each ending at the local app (listeners/inbound_routes),
        and its TLS material: the live one while ``inbound.tls`` names the same files."""
        cfg = config.inbound
        if cfg is None:
            return None
        live = self.inbound.tls if self.inbound is not None else None
        files = (cfg.tls.cert, cfg.tls.key, cfg.tls.ca)
        material = live if live is not None and live.files == files else None
        if material is None:
            material = server_material(cfg.tls, self.config_name)  # ConfigError naming the file
        # the identity header filter reads the sidecar's own ID from it
        self.resources[INBOUND_TLS] = material
        app = inbound_routes.app_upstream(cfg)
        adapter = self.adapters.get(app.adapter)
        if adapter is None:
            raise PluginError("the inbound listener needs the http adapter, which is disabled")
        try:
            terminal = adapter.handler(inbound_routes.APP, app)
        except Exception as e:
            raise PluginError(
                f"adapter {app.adapter!r} failed to build the inbound app ({cfg.app}): "
                f"{type(e).__name__}: {e}"
            ) from e
        explicit = []
        for spec in inbound_routes.routes(cfg):
            ctx = self._context(
                config, sections, spec.name, inbound_routes.APP, up=app, front=INBOUND_FRONT
            )
            route = Route(spec.name, inbound_routes.APP, self._chain(ctx, terminal))
            m = spec.match
            explicit.append(
                ExplicitRoute(
                    route,
                    m.path_prefix if m is not None else "/",  # the default route: everything
                    m.host if m is not None else None,
                    tuple(m.headers.items()) if m is not None else (),
                    None,  # paths reach the app unchanged
                )
            )
        return RouteTable({}, explicit), material

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Validate, build and listen. Raises ConfigError/PluginError/OSError on failure."""
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def preflight(self) -> None:
        """Run every check :meth:`start` runs, listening on nothing (``sidecar check``).

        The same code as start-up: plugin sections validated, adapters built, every route's
        chain composed (secrets read and checked where they go, certificate files, gRPC
        channels), with the built-in lifespans' resources built offline
        (:mod:`sidecar.preflight`). Raises what :meth:`start` would (ConfigError with every
        ``file: key.path: reason``, PluginError); everything built is closed again.
        """
        from .preflight import offline_resources

        try:
            self._build_adapters()
            self.resources.update(offline_resources(self, self._stack))
            self._compose_all(self.config, self.plugin_sections)
        finally:
            await self._stack.aclose()
            self.resources.clear()
            self.adapters.clear()

    def _build_adapters(self) -> None:
        """Validate the plugin sections, then build every registered adapter (start-up)."""
        self.plugin_sections = self._validate(self.config)
        services = AdapterServices(self.metrics, logging.getLogger("sidecar.adapter"))
        for reg in self.plugin_host.registries.adapters.registrations():
            try:
                self.adapters[reg.name] = reg.item(services)
            except Exception as e:
                raise PluginError(
                    f"plugin {reg.owner!r}: adapter {reg.name!r} failed to start: {e}"
                ) from e
        self._stack.push_async_callback(self._close_adapters)

    def _compose_all(
        self, config: SidecarConfig, sections: dict[str, BaseModel]
    ) -> tuple[RouteTable, GrpcRoutes | None, tuple[RouteTable, TlsMaterial] | None]:
        """Every listener's routes: HTTP, gRPC (when enabled) and inbound (when configured)."""
        table = self._compose(config, sections)
        grpc_table = self._compose_grpc(config, sections) if config.grpc.enabled else None
        return table, grpc_table, self._compose_inbound(config, sections)

    async def _start(self) -> None:
        config = self.config
        self._build_adapters()
        # the admin port comes up first, so probes see 503 on /readyz (not a refused connection)
        # while lifespans and composition run, and it goes down last (after lifespans exited)
        self.admin = AdminServer(self, self.plugin_host.registries.admin_routes)
        host, port = split_address(config.admin.address)
        await _listen("admin", config.admin.address, self.admin.start(host, port))
        self._stack.push_async_callback(self.admin.stop)
        # lifespans are entered before listeners accept and exited after they drained
        for life in self.plugin_host.registries.lifespans.registrations():
            try:
                await self._stack.enter_async_context(life.item(self))
            except ConfigError:
                raise  # a setting the lifespan reads (tracing's OTEL_* variables): exit 2
            except Exception as e:
                raise PluginError(
                    f"plugin {life.owner!r}: lifespan {life.name!r} failed at start-up: "
                    f"{type(e).__name__}: {e}"
                ) from e
        table, grpc_table, inbound = self._compose_all(config, self.plugin_sections)
        self._shared = self._shared_next.build()
        self.http = HttpListener(config.http, table, self.metrics)
        self.http.cap.limit = self._connection_cap(config.http.max_connections)
        self.http.on_unrouted = self._log_unrouted
        host, port = split_address(config.http.address)
        await _listen("http", config.http.address, self.http.start(host, port))
        fields = {
            "admin": f"{host_of(config.admin.address)}:{self.admin.port}",
            "http": f"{host}:{self.http.port}",
        }
        if grpc_table is not None:
            await self._start_grpc(config.grpc.address, grpc_table)
            assert self.grpc is not None
            fields["grpc"] = f"{host_of(config.grpc.address)}:{self.grpc.port}"
        if inbound is not None and config.inbound is not None:
            await self._start_inbound(config.inbound.address, *inbound)
            assert self.inbound is not None
            fields["inbound"] = f"{host_of(config.inbound.address)}:{self.inbound.port}"
        self.state = "ready"
        log.info(
            "sidecar ready",
            extra={
                "fields": {
                    **fields,
                    "upstreams": sorted(config.upstreams),
                    "config": self.config_name,
                }
            },
        )

    async def _start_grpc(self, address: str, table: GrpcRoutes) -> None:
        assert self.http is not None
        front = H2GrpcListener if self.config.grpc.server == "h2" else GrpcListener
        self.grpc = front(self.config.grpc, table, self.metrics, self)
        if isinstance(self.grpc, H2GrpcListener):
            self.grpc.cap.limit = self._connection_cap(self.config.grpc.max_connections)
        self.grpc.on_unrouted = self._log_unrouted
        host, port = split_address(address)
        try:
            await _listen("grpc", address, self.grpc.start(host, port))
        except BaseException:
            self.grpc = None
            await self._close_started_listeners()
            raise

    async def _start_inbound(self, address: str, table: RouteTable, tls: TlsMaterial) -> None:
        assert self.config.inbound is not None and self.http is not None
        self.inbound = InboundListener(self.config.inbound, table, self.metrics, tls)
        self.inbound.cap.limit = self._connection_cap(self.config.inbound.max_connections)
        self.inbound.on_unrouted = self._log_unrouted
        host, port = split_address(address)
        try:
            await _listen("inbound", address, self.inbound.start(host, port))
        except BaseException:
            self.inbound = None
            await self._close_started_listeners()
            raise

    def _connection_cap(self, configured: int | None) -> int:
        """A data listener's connection cap: the config's, or its share of the open-files
        limit (:func:`sidecar.fdlimit.connection_cap`), read when it starts."""
        if configured is not None:
            return configured
        config = self.config
        listeners = 1 + int(config.grpc.enabled) + int(config.inbound is not None)
        return fdlimit.connection_cap(fdlimit.open_files_limit(), listeners)

    async def _close_started_listeners(self) -> None:
        """A listener failed to start after others did: close those (nothing else would)."""
        for listener in (self.http, self.grpc):
            if listener is not None:
                listener.stop_accepting()
                await listener.drain(0)

    def _log_unrouted(self, exchange: Exchange, error: SidecarError, sent: int = 0) -> None:
        # read per unrouted call (an error path): a reload may turn the access log on or off
        if self.config.telemetry.access_log.enabled:
            access_log.unrouted(exchange, error, sent)

    async def _close_adapters(self) -> None:
        for adapter in self.adapters.values():
            try:
                await adapter.aclose()
            except Exception:
                log.exception("adapter failed to close")

    async def drain(self, *, wait_for_app: bool = False) -> None:
        """Graceful stop, in uvicorn's order; a second call waits for the first.

        The grace (``shutdown.drain_timeout``) bounds all of it; what runs past it is cut, and
        the sidecar still stops cleanly (the process exits 0). With ``wait_for_app`` (what
        SIGTERM runs: :func:`sidecar.lifecycle.serve`) and ``shutdown.app_quiet_period`` set,
        the egress listeners first keep serving the app until it has gone quiet
        (:mod:`sidecar.app_quiet`); the drain then gives in-flight calls what is left of the
        grace. Without it (``async with Sidecar``, tests) the drain starts at once.
        """
        if self.state in ("draining", "stopped"):
            await self.stopped.wait()
            return
        # 0. not ready: /readyz answers 503 from now on (the admin port stays up to the end)
        self.state = "draining"
        shutdown = self.config.shutdown
        grace = shutdown.drain_timeout
        quiet = shutdown.app_quiet_period if wait_for_app else 0.0
        deadline = asyncio.get_running_loop().time() + grace
        try:
            egress: list[HttpListener | GrpcListener | H2GrpcListener] = [
                x for x in (self.http, self.grpc) if x is not None
            ]
            peers = [self.inbound] if self.inbound is not None else []
            # 1. peers stop reaching the app through us at once (they go to other replicas,
            #    readiness is false); their calls in flight get the grace, as the app's do
            for listener in peers:
                listener.stop_accepting()
            left = sum(
                await asyncio.gather(
                    *(x.drain(grace) for x in peers), self._drain_egress(egress, quiet, deadline)
                )
            )
            if left:
                log.warning(
                    "drain timeout: connections cut",
                    extra={"fields": {"connections": left, "grace_s": grace}},
                )
        finally:
            # 5. exit lifespans (reverse order), then the admin port, then the adapters' pools:
            #    the reverse of start-up
            await self._stack.aclose()
            self.state = "stopped"
            self.stopped.set()

    async def _drain_egress(
        self,
        egress: list[HttpListener | GrpcListener | H2GrpcListener],
        quiet: float,
        deadline: float,
    ) -> int:
        """Steps 2-4 of :meth:`drain` for the app-facing listeners; how many calls were cut."""
        if quiet > 0 and egress:
            # 2. the app got SIGTERM too (classic layout) and may still call out while it
            #    drains: keep serving it until it has gone quiet, bounded by the grace; each
            #    connection ends after its call meanwhile
            for listener in egress:
                listener.hold_for_app()
            await wait_for_quiet_app(egress, quiet, deadline)
        # 3. stop accepting; busy connections answer with "Connection: close" and close, idle
        #    keep-alive ones close after a short quiet period (see stop_accepting); the gRPC
        #    server refuses new calls as its drain begins (in step 4, at once)
        for listener in egress:
            listener.stop_accepting()
        # 4. wait for in-flight calls, bounded by what is left of the grace; then cut the
        #    stragglers and wait (bounded) for their tasks to unwind, so no call still holds an
        #    upstream connection when the adapters close their pools
        grace_left = max(0.0, deadline - asyncio.get_running_loop().time())
        return sum(await asyncio.gather(*(x.drain(grace_left) for x in egress)))

    async def __aenter__(self) -> Sidecar:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()

    # --- reload ------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config file (see :meth:`reload_result`); whether the new config is in
        effect."""
        return (await self.reload_result()).applied

    async def reload_result(self) -> ReloadResult:
        """Re-read the config file; swap the route table if valid, keep the old one if not.

        Says whether the new config is in effect, why not, and which changes wait for a restart
        (the admin API's ``Reload`` answers with it). New calls take the new route table; calls in
        flight finish on the handlers they already hold. A refused config is logged problem by
        problem (the same ``file: key.path: reason`` lines ``sidecar check`` prints) and counted
        in ``sidecar_config_reloads_total{result="refused"}``. Changes that need a restart
        (listener addresses, ``plugins.disabled``) are logged and left as they were.
        """
        async with self._reload_lock:
            if self.state != "ready":
                log.warning("reload skipped", extra={"fields": {"state": self.state}})
                return ReloadResult(False, (f"reload skipped: the sidecar is {self.state}",))
            if self.config_path is None:
                why = "reload skipped: running on the embedded default, no file to re-read"
                log.warning(why)
                return ReloadResult(False, (why,))
            try:
                # file and secret reads happen off the event loop; composing happens on it
                # (adapters may start tasks)
                data, name = await asyncio.to_thread(load_data, self.config_path)
                new = await asyncio.to_thread(validate_data, data, name, self.plugin_host.schemas())
                emptied = removes_every_upstream(self.config, new, data, name)
                if emptied is not None:
                    raise ConfigError([emptied])
                config, restart_only = split_changes(self.config, new)
                sections = self._validate(config)
                table = self._compose(config, sections)
                grpc_table = self._compose_grpc(config, sections) if self.grpc else None
                inbound = self._compose_inbound(config, sections)
            except Exception as e:  # ConfigError, PluginError, or a plugin's bug: keep serving
                return ReloadResult(False, self._refused(e))
            if restart_only:
                log.warning(
                    "these changes take effect after a restart; the old values stay until then",
                    extra={"fields": {"keys": restart_only}},
                )
            self.config = config
            self.plugin_sections = sections
            self._shared = self._shared_next.build()
            if self.http is not None:
                # new calls take the new table; in-flight calls finish on the handlers they hold
                self.http.routes = table
            if self.grpc is not None and grpc_table is not None:
                self.grpc.routes = grpc_table
            live: dict[str, UpstreamConfig] = dict(config.upstreams)
            if self.inbound is not None and inbound is not None and config.inbound is not None:
                # new handshakes take the new files (if they moved), new calls the new routes
                self.inbound.routes, self.inbound.tls = inbound
                live[inbound_routes.APP] = inbound_routes.app_upstream(config.inbound)
            for adapter in self.adapters.values():
                try:
                    # pools no upstream uses any more: idle connections close now, busy ones
                    # when their call is done
                    await adapter.retire(live)
                except Exception:
                    log.exception("adapter failed to retire old connections")
            self.metrics.config_reloads.labels("ok").inc()
            log.info(
                "config reloaded",
                extra={"fields": {"file": self.config_name, "upstreams": sorted(config.upstreams)}},
            )
            return ReloadResult(True, (), tuple(restart_only))

    def _refused(self, error: Exception) -> tuple[str, ...]:
        """Log why a reload was refused, count it, and give the reasons."""
        problems: tuple[str, ...]
        if isinstance(error, ConfigError):
            problems = tuple(str(p) for p in error.problems)
            for p in error.problems:
                log.error(
                    "config refused",
                    extra={
                        "fields": {
                            "problem": str(p),
                            "file": p.file,
                            "key": p.path,
                            "reason": p.reason,
                        }
                    },
                )
        elif isinstance(error, PluginError):
            problems = (str(error),)
            log.error("config refused", extra={"fields": {"problem": str(error)}})
        else:
            problems = (f"unexpected error while reloading: {type(error).__name__}: {error}",)
            log.error("config refused: unexpected error while reloading", exc_info=error)
        log.error("the old config keeps serving", extra={"fields": {"file": self.config_name}})
        self.metrics.config_reloads.labels("refused").inc()
        return problems

    # --- views -------------------------------------------------------------------------------

    @property
    def uptime(self) -> float:
        """Seconds since this sidecar was created (several may share a process)."""
        return time.monotonic() - self.created

    @property
    def shared(self) -> SharedState:
        """The live route table's per-upstream policy objects (breakers, limiters; see
        ``RouteContext.shared``). For views, never per call."""
        return self._shared

    @property
    def registries(self) -> Registries:
        """What the plugins registered."""
        return self.plugin_host.registries

    def adapter(self, name: str) -> Adapter | None:
        """The running adapter registered as ``name``."""
        return self.adapters.get(name)

    def redacted_config(self) -> dict[str, Any]:
        """The running config as JSON data; secrets appear only as their references."""
        data: dict[str, Any] = self.config.model_dump(mode="json")
        return data

    def describe_upstreams(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, up in self.config.upstreams.items():
            info: dict[str, Any] = {
                "adapter": up.adapter,
                "url": up.url,
                "timeout_s": up.timeout,
            }
            adapter = self.adapters.get(up.adapter)
            if adapter is not None:
                info.update(adapter.describe(name))
            # live state of each policy object shared by the upstream's routes (breaker, limits)
            info["policies"] = describe_policies(self._shared, name)
            out[name] = info
        return out

    @property
    def http_port(self) -> int:
        assert self.http is not None
        return self.http.port

    @property
    def grpc_port(self) -> int:
        assert self.grpc is not None
        return self.grpc.port

    @property
    def inbound_port(self) -> int:
        assert self.inbound is not None
        return self.inbound.port

    @property
    def admin_port(self) -> int:
        assert self.admin is not None
        return self.admin.port


def host_of(address: str) -> str:
    return split_address(address)[0]


async def _listen(what: str, address: str, start: Any) -> None:
    try:
        await start
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {address} ({what}): {e.strerror}") from None


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

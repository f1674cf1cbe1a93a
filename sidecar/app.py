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
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from . import fdlimit
from .admin import AdminServer
from .api import (
    Adapter,
    AdapterServices,
    FrontContext,
    FrontTraits,
    PluginInfo,
    Registries,
    ReloadResult,
    SharedState,
)
from .api.context import section_of
from .api.runtime import State
from .app_quiet import wait_for_quiet_app
from .build_kind import build_kind
from .composition import Composition
from .config import (
    DEFAULT_CONFIG_NAME,
    SidecarConfig,
    load_data,
    validate_data,
    validate_plugin_sections,
)
from .config.changes import removes_every_upstream, split_changes
from .config.models import UpstreamConfig
from .config.types import split_address
from .errors import ConfigError, PluginError, SidecarError
from .exchange import Exchange
from .filters import access_log
from .front_guard import GuardedFront, guard
from .grpc import services as grpc_services
from .grpc.control import RESOURCE as CONTROL_SERVICES
from .grpc.front import GrpcFront
from .health import UpstreamHealthCollector
from .listeners.fronts import HttpFront, InboundFront
from .listeners.http import HttpListener
from .listeners.inbound import InboundListener
from .plugins import PluginHost, make_plugin_host
from .resilience.views import PolicyStateCollector, describe_policies
from .telemetry.metrics import Metrics

if TYPE_CHECKING:
    # the gRPC port's servers, imported by its front as the config asks (grpcio only for its own)
    from .grpc.h2_listener import H2GrpcListener
    from .grpc.listener import GrpcListener

log = logging.getLogger("sidecar")

M = TypeVar("M", bound=BaseModel)


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
        #: the running fronts by name (``http``, ``grpc``, ``inbound``, plugins'), start order;
        #: each guarded, so a plugin's front cannot break start-up, a reload or the shutdown
        self.fronts: dict[str, GuardedFront] = {}
        # each front's live routes (a reload that a front refuses puts the others' back)
        self._routes: dict[str, Any] = {}
        self.admin: AdminServer | None = None
        self._stack = AsyncExitStack()
        self._reload_lock = asyncio.Lock()
        self.stopped = asyncio.Event()
        # per-upstream policy state (breakers, limiters) of the live route tables
        self._shared = SharedState()
        #: objects lifespans publish for filter factories (``RouteContext.resources``)
        self.resources: dict[str, Any] = {}
        # their gauges (circuit state, concurrency in flight...) are read when /metrics is scraped
        self.metrics.registry.register(PolicyStateCollector(lambda: self._shared))
        self.metrics.registry.register(UpstreamHealthCollector(self))

    # --- composition -------------------------------------------------------------------------

    def _validate(self, config: SidecarConfig) -> dict[str, BaseModel]:
        return validate_plugin_sections(config, self.plugin_host.schemas(), self.config_name)

    def _composition(self, config: SidecarConfig, sections: dict[str, BaseModel]) -> Composition:
        """The route builder of ``config``, over this sidecar's plugins and adapters."""
        return Composition(
            config,
            self.config_name,
            sections,
            plugin_host=self.plugin_host,
            adapters=self.adapters,
            metrics=self.metrics,
            resources=self.resources,
            live=self._shared,
        )

    def _compose_all(
        self, config: SidecarConfig, sections: dict[str, BaseModel]
    ) -> tuple[dict[str, Any], Composition]:
        """Every front's routes for ``config``, and the composition that built them (its shared
        state and published resources); nothing is live yet (:meth:`_go_live`)."""
        builder = self._composition(config, sections)
        routes = {name: front.compose(builder) for name, front in self.fronts.items()}
        return routes, builder

    def _go_live(self, builder: Composition) -> None:
        """Keep what a composition built beside its routes: its shared state, its resources."""
        self._shared = builder.shared.build()
        self.resources.update(builder.published)

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
            self._build_fronts()
            self._compose_all(self.config, self.plugin_sections)
        finally:
            await self._stack.aclose()
            self.resources.clear()
            self.adapters.clear()
            self.fronts.clear()

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

    def _build_fronts(self) -> None:
        """Build every registered front the config asks for (start-up)."""
        # the gRPC port serves the sidecar's own services (health, admin API) beside the proxy;
        # they belong to the control plane, so the port gets them from here
        self.resources[CONTROL_SERVICES] = grpc_services.CONTROL
        ctx = FrontContext(
            runtime=self,
            config=self.config,
            metrics=self.metrics,
            on_unrouted=self._log_unrouted,
            connection_cap=self._connection_cap,
        )
        for reg in self.plugin_host.registries.fronts.registrations():
            try:
                front = reg.item(ctx)
            except (ConfigError, OSError):
                raise
            except Exception as e:
                raise PluginError(
                    f"plugin {reg.owner!r}: front {reg.name!r} failed to build: "
                    f"{type(e).__name__}: {e}"
                ) from e
            if front is not None:
                self.fronts[reg.name] = guard(front, reg.name, reg.owner)

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
        self._build_fronts()
        routes, composed = self._compose_all(config, self.plugin_sections)
        self._go_live(composed)
        fields = {"admin": f"{host_of(config.admin.address)}:{self.admin.port}"}
        started: list[GuardedFront] = []
        for name, front in self.fronts.items():
            try:
                front.swap(routes[name])
                await front.start(_front_address(config, name))
            except BaseException:
                await _close_started(started)
                raise
            self._routes[name] = routes[name]
            started.append(front)
            fields[name] = front.address
        self.state = "ready"
        log.info(
            "sidecar ready",
            extra={
                "fields": {
                    **fields,
                    "upstreams": sorted(config.upstreams),
                    "config": self.config_name,
                    "build": build_kind(),
                }
            },
        )

    def _connection_cap(self, configured: int | None) -> int:
        """A data listener's connection cap: the config's, or its share of the open-files
        limit (:func:`sidecar.fdlimit.connection_cap`), read when it starts."""
        if configured is not None:
            return configured
        # the built-in data fronts the config turns on share the limit (a plugin's front that
        # asks gets the HTTP port's share)
        config = self.config
        listeners = 1 + int(config.grpc.enabled) + int(config.inbound is not None)
        return fdlimit.connection_cap(fdlimit.open_files_limit(), listeners)

    def _log_unrouted(
        self, front: FrontTraits, exchange: Exchange, error: SidecarError, sent: int = 0
    ) -> None:
        # read per unrouted call (an error path): a reload may turn the access log on or off
        if self.config.telemetry.access_log.enabled:
            access_log.unrouted(front, exchange, error, sent)

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
            egress = [f for f in self.fronts.values() if f.faces == "app"]
            peers = [f for f in self.fronts.values() if f.faces == "peers"]
            # 1. peers stop reaching the app through us at once (they go to other replicas,
            #    readiness is false); their calls in flight get the grace, as the app's do
            for front in peers:
                front.stop_accepting()
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
        egress: list[GuardedFront],
        quiet: float,
        deadline: float,
    ) -> int:
        """Steps 2-4 of :meth:`drain` for the app-facing listeners; how many calls were cut."""
        if quiet > 0 and egress:
            # 2. the app got SIGTERM too (classic layout) and may still call out while it
            #    drains: keep serving it until it has gone quiet, bounded by the grace; each
            #    connection ends after its call meanwhile
            for front in egress:
                front.hold_for_app()
            await wait_for_quiet_app(egress, quiet, deadline)
        # 3. stop accepting; busy connections answer with "Connection: close" and close, idle
        #    keep-alive ones close after a short quiet period (see stop_accepting); the gRPC
        #    server refuses new calls as its drain begins (in step 4, at once)
        for front in egress:
            front.stop_accepting()
        # 4. wait for in-flight calls, bounded by what is left of the grace; then cut the
        #    stragglers and wait (bounded) for their tasks to unwind, so no call still holds an
        #    upstream connection when the adapters close their pools
        grace_left = max(0.0, deadline - asyncio.get_running_loop().time())
        return sum(await asyncio.gather(*(x.drain(grace_left) for x in egress)))

    @property
    def http(self) -> HttpListener | None:
        """The HTTP front's listener (``None`` before start-up)."""
        front = self.fronts.get("http")
        inner = front.inner if front is not None else None
        return inner.listener if isinstance(inner, HttpFront) else None

    @property
    def grpc(self) -> GrpcListener | H2GrpcListener | None:
        """The gRPC front's server, unless ``grpc.enabled`` is false."""
        front = self.fronts.get("grpc")
        inner = front.inner if front is not None else None
        return inner.listener if isinstance(inner, GrpcFront) else None

    @property
    def inbound(self) -> InboundListener | None:
        """The inbound mTLS front's listener, when configured."""
        front = self.fronts.get("inbound")
        inner = front.inner if front is not None else None
        return inner.listener if isinstance(inner, InboundFront) else None

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
                routes, composed = self._compose_all(config, sections)
            except Exception as e:  # ConfigError, PluginError, or a plugin's bug: keep serving
                return ReloadResult(False, self._refused(e))
            try:
                live = self._swap_all(routes, dict(config.upstreams))
            except PluginError as e:  # a front refused its routes: all fronts keep the old
                return ReloadResult(False, self._refused(e))
            if restart_only:
                log.warning(
                    "these changes take effect after a restart; the old values stay until then",
                    extra={"fields": {"keys": restart_only}},
                )
            self.config = config
            self.plugin_sections = sections
            self._go_live(composed)
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

    def _swap_all(
        self, routes: dict[str, Any], live: dict[str, UpstreamConfig]
    ) -> dict[str, UpstreamConfig]:
        """Make every front's new routes live (new calls take them; in-flight calls finish on
        the handlers they hold) and add the upstreams they use to ``live``; when one front
        refuses (a plugin's bug), those already swapped get their old routes back and the
        PluginError is raised: the reload is all or nothing."""
        swapped: list[str] = []
        try:
            for name, front in self.fronts.items():
                live.update(front.upstreams(routes[name]))
                front.swap(routes[name])
                swapped.append(name)
        except PluginError:
            for name in swapped:
                self.fronts[name].swap(self._routes[name])
            raise
        self._routes.update(routes)
        return live

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

    def plugin_config(self, name: str, model: type[M]) -> M:
        """The validated ``plugins.<name>`` section in effect (see ``RuntimeView``)."""
        section: M = section_of(self.plugin_sections, name, model)
        return section

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
    def ports(self) -> dict[str, int]:
        """The admin port's and, while ready, each front's bound port, by name (admin first)."""
        bound = {"admin": self.admin.port} if self.admin is not None else {}
        if self.state == "ready":  # fronts listen from the end of start-up until draining
            bound.update((name, front.port) for name, front in self.fronts.items())
        return {name: port for name, port in bound.items() if port}

    def plugins(self) -> list[PluginInfo]:
        """Each loaded plugin, where it came from, what it registered."""
        return self.plugin_host.plugins()

    @property
    def disabled_plugins(self) -> tuple[str, ...]:
        """The names in ``plugins.disabled``."""
        return self.plugin_host.disabled

    @property
    def http_port(self) -> int:
        return self.fronts["http"].port

    @property
    def grpc_port(self) -> int:
        return self.fronts["grpc"].port

    @property
    def inbound_port(self) -> int:
        return self.fronts["inbound"].port

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


def _front_address(config: SidecarConfig, front: str) -> str:
    """The configured address of a built-in front, for the error when it cannot listen."""
    section = getattr(config, front, None)
    address = getattr(section, "address", None)
    return address if isinstance(address, str) else front


async def _close_started(fronts: list[GuardedFront]) -> None:
    """A front failed to start after others did: close those (nothing else would)."""
    for front in fronts:
        front.stop_accepting()
        await front.drain(0)

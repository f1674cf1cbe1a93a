"""The plugin host: a typed facade over pluggy's ``PluginManager``.

:func:`make_plugin_host` assembles it in a fixed order, each step for a reason:

1. add the hookspecs, so every plugin registered after is validated against them;
2. block the plugins ``plugins.disabled`` names, so a disabled plugin is never even imported;
3. load the ``sidecar`` entry points (third-party distributions, ``plugins/*``);
4. register the built-ins, by module name, with the same hooks (their defaults are ``trylast``);
5. ``check_pending()``: a hook implementation with no spec is a typo and fails start-up, naming
   the plugin and the closest hook name.

Then every registration hook is called one plugin at a time, so each registry knows who is
adding and a plugin that raises is named in the error that stops start-up. Not here: what the
registrations mean (:mod:`sidecar.app` composes routes from them).
"""

from __future__ import annotations

__all__ = [
    "BUILTIN",
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginHost",
    "PluginInfo",
    "Registries",
    "make_plugin_host",
]

import difflib
import importlib
import inspect
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from .api import (
    API_VERSION,
    GRPC_STATUSES,
    AdapterRegistry,
    AdminRouteRegistry,
    ConfigRegistry,
    CredentialRegistry,
    FilterRegistry,
    FrontRegistry,
    HookDeprecated,
    LifespanRegistry,
    PluginInfo,
    RateLimitBackendRegistry,
    Registries,
    Registry,
    hookspecs,
)
from .auth.checks import auth_problems
from .blame import Blame
from .config.loader import PluginSchemas
from .errors import ConfigProblem, PluginError, RegistryConflict
from .exchange import Exchange, Response
from .ratelimit.checks import backend_problems

log = logging.getLogger("sidecar.plugins")

#: Built-in plugins, registered by module name like any other plugin (defaults are plugins).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "sidecar.adapters.http",
    "sidecar.adapters.echo",
    "sidecar.grpc.adapter",
    "sidecar.filters",
    "sidecar.admin_routes",
    "sidecar.metrics_port",
    "sidecar.ratelimit.plugin",
    "sidecar.auth.plugin",
    "sidecar.tls.plugin",
    "sidecar.telemetry.tracing",
    "sidecar.listeners.fronts",
)

ENTRY_POINT_GROUP = "sidecar"
BUILTIN = "built-in"


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager plus pytest's rule: a ``sidecar_*`` function is a hook implementation
    even without ``@hookimpl``, so a forgotten decorator or a misspelt name fails at start-up
    instead of being silently ignored."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("sidecar_"):
            attr = inspect.getattr_static(plugin, name, None)
            if inspect.isfunction(attr) or isinstance(attr, staticmethod | classmethod):
                return pluggy.HookimplOpts(
                    wrapper=False,
                    hookwrapper=False,
                    optionalhook=False,
                    tryfirst=False,
                    trylast=False,
                    specname=None,
                )
        return opts


class PluginHost:
    """Typed access to the plugins; built by :func:`make_plugin_host`."""

    def __init__(
        self, pm: pluggy.PluginManager, sources: dict[str, str], disabled: Iterable[str] = ()
    ) -> None:
        self.pm = pm
        self._sources = sources
        #: names in ``plugins.disabled``, in the order given.
        self.disabled: tuple[str, ...] = tuple(dict.fromkeys(disabled))
        self.registries = self._collect()
        self._blame = Blame(pm, self.registries.filters)

    def source(self, name: str) -> str:
        """Where plugin ``name`` came from (see :attr:`PluginInfo.source`)."""
        return self._sources.get(name, BUILTIN)

    def _call_each(self, hook_name: str, registry: Registry[Any]) -> None:
        """Call ``hook_name`` once per implementing plugin, through pluggy (its tracing,
        monitoring and argument handling apply), telling ``registry`` who is adding."""
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        impls = caller.get_hookimpls()
        plugins = [impl.plugin for impl in impls]
        # pluggy calls implementations from the end of this list (tryfirst ... trylast)
        for impl in reversed(impls):
            name = impl.plugin_name
            registry.owner = name
            others = [p for p in plugins if p is not impl.plugin]
            try:
                self.pm.subset_hook_caller(hook_name, others)(registry=registry)
            except RegistryConflict:
                raise
            except Exception as e:
                raise PluginError(
                    f"plugin {name!r} ({self.source(name)}) failed in {hook_name}: "
                    f"{type(e).__name__}: {e}"
                ) from e
        registry.close()

    def _collect(self) -> Registries:
        regs = Registries(
            ConfigRegistry(),
            AdapterRegistry(),
            FilterRegistry(),
            LifespanRegistry(),
            AdminRouteRegistry(),
            RateLimitBackendRegistry(),
            CredentialRegistry(),
            FrontRegistry(),
        )
        self._call_each("sidecar_declare_config", regs.config)
        self._call_each("sidecar_register_adapters", regs.adapters)
        self._call_each("sidecar_register_filters", regs.filters)
        self._call_each("sidecar_register_lifespans", regs.lifespans)
        self._call_each("sidecar_register_admin_routes", regs.admin_routes)
        self._call_each("sidecar_register_ratelimit_backends", regs.ratelimit_backends)
        self._call_each("sidecar_register_credentials", regs.credentials)
        self._call_each("sidecar_register_fronts", regs.fronts)
        try:
            regs.filters.ordered()  # a placement next to a missing filter, or in a circle
        except ValueError as e:
            raise PluginError(str(e)) from None
        return regs

    def schemas(self) -> PluginSchemas:
        """What the config loader validates with: plugin sections, adapter options, and the
        checks of ``auth`` and ``ratelimit_backends`` against the registered types."""
        r = self.registries
        backends = {x.name: x.item for x in r.ratelimit_backends.registrations()}
        credentials = {x.name: x.item for x in r.credentials.registrations()}
        grpc_adapters = frozenset(
            x.name for x in r.adapters.registrations() if x.item.traits.statuses == GRPC_STATUSES
        )

        def check_backends(data: Mapping[str, Any], file: str) -> list[ConfigProblem]:
            return backend_problems(data.get("ratelimit_backends"), backends, file)

        def check_auth(data: Mapping[str, Any], file: str) -> list[ConfigProblem]:
            return auth_problems(data.get("upstreams"), credentials, file, grpc_adapters)

        return PluginSchemas(
            {x.name: x.item for x in r.config.registrations()},
            {x.name: x.item.options_model for x in r.adapters.registrations()},
            (check_backends, check_auth),
        )

    def plugins(self) -> list[PluginInfo]:
        """Each loaded plugin (registration order), where it came from, what it registered."""
        r = self.registries
        rescuers = {i.plugin_name for i in self.pm.hook.sidecar_rescue.get_hookimpls()}
        placed = {x.name: x.order for x in r.filters.ordered()}  # where each filter landed
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            registered = [f"adapter {x.name}" for x in r.adapters.by_owner(name)]
            registered += [
                f"filter {x.name} (order {placed[x.name]}{r.filters.placement(x.name)})"
                for x in r.filters.by_owner(name)
            ]
            registered += [f"config plugins.{x.name}" for x in r.config.by_owner(name)]
            registered += [f"lifespan {x.name}" for x in r.lifespans.by_owner(name)]
            registered += [f"admin {x.name}" for x in r.admin_routes.by_owner(name)]
            registered += [
                f"ratelimit backend {x.name}" for x in r.ratelimit_backends.by_owner(name)
            ]
            registered += [f"credential provider {x.name}" for x in r.credentials.by_owner(name)]
            registered += [f"front {x.name}" for x in r.fronts.by_owner(name)]
            if name in rescuers:
                registered.append("rescue hook")
            out.append(PluginInfo(name, self.source(name), registered))
        return out

    def rescue_hook(self) -> Callable[[Exchange, BaseException], Response | None] | None:
        """``sidecar_rescue`` as one callable, or ``None`` when no plugin implements it.

        Each plugin's implementation is its own pluggy call (built once, here), so one that
        raises is logged with its plugin's name and the next one still gets its chance.
        """
        found = self.pm.hook.sidecar_rescue.get_hookimpls()
        plugins = [i.plugin for i in found]
        callers = [
            (
                i.plugin_name,
                self.pm.subset_hook_caller(
                    "sidecar_rescue", [p for p in plugins if p is not i.plugin]
                ),
            )
            for i in reversed(found)
        ]
        if not callers:
            return None

        def rescue(exchange: Exchange, error: BaseException) -> Response | None:
            for name, call in callers:
                try:
                    resp: object = call(exchange=exchange, error=error)
                except Exception:
                    log.exception(
                        f"plugin {name!r}: sidecar_rescue raised",
                        extra={"fields": {"plugin": name, "route": exchange.route}},
                    )
                    continue
                if isinstance(resp, Response):
                    return resp
                if resp is not None:  # a bug of the plugin's: the app must still get an answer
                    log.error(
                        f"plugin {name!r}: sidecar_rescue returned a {type(resp).__name__}, "
                        f"not a Response or None",
                        extra={"fields": {"plugin": name, "route": exchange.route}},
                    )
            return None

        return rescue

    def blame(self, error: BaseException) -> dict[str, str] | None:
        """The plugin whose code raised ``error``: ``{"plugin": name[, "filter": name]}``.

        Found from the traceback (see :mod:`sidecar.blame`), only when a call failed.
        """
        return self._blame(error)


def _register(pm: pluggy.PluginManager, plugin: object, name: str, source: str) -> None:
    """Register ``plugin``: refused when written for another major version of the plugin API
    (``SIDECAR_API``); a deprecated hook it implements is logged with its name."""
    wanted = getattr(plugin, "SIDECAR_API", None)
    if wanted is not None and str(wanted).split(".")[0] != API_VERSION.split(".")[0]:
        raise PluginError(
            f"plugin {name!r} ({source}) is written for plugin API {wanted}; "
            f"this sidecar has plugin API {API_VERSION}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HookDeprecated)
        try:
            pm.register(plugin, name=name)
        except Exception as e:
            raise PluginError(f"plugin {name!r} ({source}) failed to register: {e}") from e
    for w in caught:
        if issubclass(w.category, HookDeprecated):
            log.warning(
                f"plugin {name!r} ({source}): {w.message}",
                extra={"fields": {"plugin": name, "source": source}},
            )
        else:  # not ours to judge: pass it on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _entry_points() -> list[EntryPoint]:
    # by name, so the call order of hooks does not depend on the order of sys.path
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _check_pending(pm: pluggy.PluginManager, sources: dict[str, str]) -> None:
    specs = [
        n for n, c in vars(pm.hook).items() if isinstance(c, pluggy.HookCaller) and c.has_spec()
    ]
    for hook_name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller):
            continue
        for impl in caller.get_hookimpls():
            name = impl.plugin_name
            where = f"plugin {name!r} ({sources.get(name, BUILTIN)})"
            if not caller.has_spec() and not impl.optionalhook:
                close = difflib.get_close_matches(hook_name, specs, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(f"{where} implements {hook_name!r}, which is no hook{hint}")
            if impl.wrapper or impl.hookwrapper:
                raise PluginError(
                    f"{where}: {hook_name} is a wrapper; sidecar hooks take plain implementations"
                )
            if (
                inspect.iscoroutinefunction(impl.function)
                or inspect.isgeneratorfunction(impl.function)
                or inspect.isasyncgenfunction(impl.function)
            ):
                raise PluginError(
                    f"{where}: {hook_name} is async or a generator; sidecar hooks are plain "
                    f"functions (start async work in a lifespan)"
                )
    try:
        pm.check_pending()  # pluggy's own check, should it ever check more than the loop above
    except pluggy.PluginValidationError as e:
        name = pm.get_name(e.plugin) or repr(e.plugin)
        raise PluginError(f"plugin {name!r}: {e}") from e


def make_plugin_host(
    disabled: Iterable[str] = (),
    *,
    load_entry_points: bool = True,
    extra_plugins: Iterable[tuple[str, object]] = (),
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> PluginHost:
    """Build the plugin host (raises :class:`~sidecar.errors.PluginError` naming the plugin).

    ``disabled`` names entry points or built-in modules that must not load. ``extra_plugins``
    ``(name, plugin)`` are registered after the built-ins; tests and embedders use it instead of
    entry points.
    """
    disabled = tuple(dict.fromkeys(disabled))
    builtins = tuple(builtins)
    extra_plugins = tuple(extra_plugins)
    pm = _PluginManager(ENTRY_POINT_GROUP)
    # 1. specs first: registering a plugin validates its implementations against them
    pm.add_hookspecs(hookspecs)
    # 2. block before loading anything, so a disabled plugin is never imported
    for name in disabled:
        pm.set_blocked(name)
    sources: dict[str, str] = {}
    known = {*builtins, *(name for name, _ in extra_plugins)}
    # 3. third-party plugins (and plugins/*) from the entry-point group
    if load_entry_points:
        for ep in _entry_points():
            known.add(ep.name)
            if pm.is_blocked(ep.name):
                continue
            dist = ep.dist
            source = f"{dist.name} {dist.version}" if dist is not None else "entry point"
            if ep.name in sources:
                if sources[ep.name] == source:
                    continue  # the same distribution found twice on sys.path
                raise PluginError(
                    f"plugin name {ep.name!r} is taken twice: by {sources[ep.name]} and by {source}"
                )
            try:
                plugin = ep.load()
            except Exception as e:
                raise PluginError(
                    f"plugin {ep.name!r} ({source}) failed to load: {type(e).__name__}: {e}"
                ) from e
            _register(pm, plugin, ep.name, source)
            sources[ep.name] = source
    # 4. built-ins after them: the same hooks as everyone else
    for module_name in builtins:
        if pm.is_blocked(module_name):
            continue
        _register(pm, importlib.import_module(module_name), module_name, BUILTIN)
        sources[module_name] = BUILTIN
    for name, plugin in extra_plugins:
        if pm.is_blocked(name):
            continue
        _register(pm, plugin, name, "in-process")
        sources[name] = "in-process"
    # 5. an implementation with no spec is a typo: refuse it now, naming the plugin
    _check_pending(pm, sources)
    unknown = [n for n in disabled if n not in known]
    if unknown and load_entry_points:
        # a warning, not an error: one config may serve images with different plugins installed
        log.warning(
            f"plugins.disabled names no installed plugin: {', '.join(unknown)}",
            extra={"fields": {"names": unknown, "installed": sorted(known)}},
        )
    return PluginHost(pm, sources, disabled)

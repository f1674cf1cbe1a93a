"""The plugin host: a typed facade over pluggy's ``PluginManager``.

:func:`make_plugin_host` assembles it in a fixed order: hookspecs → block the plugins the config
disables → load ``sidecar`` entry points (third-party distributions) → register the built-ins →
``check_pending()`` (a hook implementation with no spec is a typo, and fails start-up).

Registration hooks are called one plugin at a time so each registry knows who is adding, and so a
plugin that raises is named in the error that stops start-up.
"""

from __future__ import annotations

__all__ = ["BUILTIN_PLUGINS", "PluginHost", "PluginInfo", "Registries", "make_plugin_host"]

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, RegistryConflict
from .exchange import Exchange, Response
from .registry import (
    AdapterRegistry,
    AdminRouteRegistry,
    ConfigRegistry,
    FilterRegistry,
    LifespanRegistry,
    _Registry,
)

#: Built-in plugins, registered by module name like any other plugin (defaults are plugins).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "sidecar.adapters.http",
    "sidecar.adapters.echo",
    "sidecar.filters",
    "sidecar.admin_routes",
)

ENTRY_POINT_GROUP = "sidecar"


@dataclass
class PluginInfo:
    name: str
    #: ``"built-in"`` or ``"<distribution> <version>"``.
    source: str
    registered: list[str] = field(default_factory=list)


@dataclass
class Registries:
    """Everything the plugins registered, collected once per plugin host."""

    config: ConfigRegistry
    adapters: AdapterRegistry
    filters: FilterRegistry
    lifespans: LifespanRegistry
    admin_routes: AdminRouteRegistry


class PluginHost:
    """Typed access to the plugins; built by :func:`make_plugin_host`."""

    def __init__(self, pm: pluggy.PluginManager, sources: dict[str, str]) -> None:
        self.pm = pm
        self._sources = sources
        self.registries = self._collect()

    def _call_each(self, hook_name: str, registry: _Registry[Any]) -> None:
        caller = getattr(self.pm.hook, hook_name)
        # pluggy calls implementations last-registered first; keep that order.
        for impl in reversed(caller.get_hookimpls()):
            registry.owner = impl.plugin_name
            try:
                impl.function(registry=registry)
            except RegistryConflict:
                raise
            except Exception as e:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(e).__name__}: {e}"
                ) from e

    def _collect(self) -> Registries:
        regs = Registries(
            ConfigRegistry(),
            AdapterRegistry(),
            FilterRegistry(),
            LifespanRegistry(),
            AdminRouteRegistry(),
        )
        self._call_each("sidecar_declare_config", regs.config)
        self._call_each("sidecar_register_adapters", regs.adapters)
        self._call_each("sidecar_register_filters", regs.filters)
        self._call_each("sidecar_register_lifespans", regs.lifespans)
        self._call_each("sidecar_register_admin_routes", regs.admin_routes)
        return regs

    def plugins(self) -> list[PluginInfo]:
        """Each loaded plugin, where it came from, and what it registered."""
        r = self.registries
        out = []
        for name, _plugin in self.pm.list_name_plugin():
            if name is None or self.pm.is_blocked(name):
                continue
            registered = [f"adapter {n}" for n in r.adapters.by_owner(name)]
            registered += [f"filter {n}" for n in r.filters.by_owner(name)]
            registered += [f"config plugins.{n}" for n in r.config.by_owner(name)]
            registered += [f"lifespan {n}" for n in r.lifespans.by_owner(name)]
            registered += [f"admin {n}" for n in r.admin_routes.by_owner(name)]
            if self.pm.hook.sidecar_rescue.get_hookimpls() and any(
                i.plugin_name == name for i in self.pm.hook.sidecar_rescue.get_hookimpls()
            ):
                registered.append("rescue")
            out.append(PluginInfo(name, self._sources.get(name, "built-in"), registered))
        return out

    def rescue_hook(self) -> Callable[[Exchange, BaseException], Response | None] | None:
        """The ``sidecar_rescue`` caller, or ``None`` when no plugin implements it."""
        caller = self.pm.hook.sidecar_rescue
        if not caller.get_hookimpls():
            return None

        def rescue(exchange: Exchange, error: BaseException) -> Response | None:
            result: Response | None = caller(exchange=exchange, error=error)
            return result

        return rescue


def make_plugin_host(
    disabled: Iterable[str] = (),
    *,
    load_entry_points: bool = True,
    extra_plugins: Iterable[tuple[str, object]] = (),
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> PluginHost:
    """Build the plugin host. ``extra_plugins`` (name, plugin) are registered after the
    built-ins; tests and embedders use it instead of entry points."""
    pm = pluggy.PluginManager("sidecar")
    # 1. hookspecs
    pm.add_hookspecs(hookspecs)
    # 2. block what the config disables, before anything can register under that name
    for name in disabled:
        pm.set_blocked(name)
    sources: dict[str, str] = {}
    # 3. third-party plugins from entry points
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
                continue
            dist = ep.dist
            source = f"{dist.name} {dist.version}" if dist is not None else "entry point"
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as e:
                raise PluginError(
                    f"plugin {ep.name!r} ({source}) failed to load: {type(e).__name__}: {e}"
                ) from e
            sources[ep.name] = source
    # 4. built-ins: the same hooks as everyone else
    for module_name in builtins:
        if pm.is_blocked(module_name):
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
    for name, plugin in extra_plugins:
        try:
            pm.register(plugin, name=name)
        except Exception as e:
            raise PluginError(f"plugin {name!r} failed to register: {e}") from e
        sources[name] = "in-process"
    # 5. a hookimpl without a spec is a typo: refuse it now
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"plugin {e.plugin!r}: {e}") from e
    return PluginHost(pm, sources)

"""The backend registry and the hook other plugins add broker backends through.

A distribution that adds a backend implements ``pubsub_register_backends(registry)`` with
:data:`hookimpl` and names the module in the entry-point group ``sidecar_pubsub``
(``[project.entry-points.sidecar_pubsub] nats = "sidecar_nats"``). The built-in backends
(:mod:`.backends`) register through the same hook. A name taken twice is refused naming both
owners, as the sidecar's own registries do. Not here: what a backend is (:mod:`.backend`).
"""

from __future__ import annotations

__all__ = ["ENTRY_POINT_GROUP", "BackendRegistry", "hookimpl", "load_backends"]

from collections.abc import Iterable

import pluggy

from sidecar import Registry

from .backend import Backend

ENTRY_POINT_GROUP = "sidecar_pubsub"
hookspec = pluggy.HookspecMarker(ENTRY_POINT_GROUP)
#: marks a backend plugin's ``pubsub_register_backends``
hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)


class BackendRegistry(Registry[type[Backend]]):
    """Backend classes by the name ``options.backend.type`` uses."""

    kind = "pubsub backend"

    def add(self, name: str, backend: type[Backend]) -> None:
        if not (isinstance(backend, type) and issubclass(backend, Backend)):
            raise TypeError(f"pubsub backend {name!r} is not a Backend subclass")
        self._add(name, backend)

    def for_scheme(self, scheme: str) -> str | None:
        """The name of the backend that takes urls of ``scheme``, if one does."""
        for registration in self.registrations():
            if scheme in registration.item.url_schemes:
                return registration.name
        return None


class _Specs:
    @hookspec
    def pubsub_register_backends(self, registry: BackendRegistry) -> None:
        """Called once per pubsub adapter: ``registry.add(name, BackendClass)``."""


def load_backends(
    extra: Iterable[tuple[str, object]] = (), *, entry_points: bool = True
) -> BackendRegistry:
    """Every backend: the built-ins, the entry points' (sorted by name) and ``extra``
    ``(name, plugin)`` (tests); closed once each plugin was called."""
    from . import backends

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(_Specs)
    pm.register(backends, "sidecar_pubsub.backends")
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name, plugin in extra:
        pm.register(plugin, name)
    pm.check_pending()
    registry = BackendRegistry()
    for impl in pm.hook.pubsub_register_backends.get_hookimpls():  # registration order
        registry.owner = impl.plugin_name
        impl.function(registry=registry)
    registry.close()
    return registry

"""Naming the plugin whose code raised: so a runtime error is logged with the plugin's name.

A failing call's traceback is walked from where the error was raised outwards, and the first frame
that belongs to a plugin names it: a filter that some plugin's factory built (recorded by the
:class:`~sidecar.api.FilterRegistry` as chains are composed), a hook implementation, or a
module of a plugin's package. A library frame in between (``json``, ``asyncio``) is skipped, so an
error raised inside a library is blamed on the plugin that called it.

This runs only when a call already failed, never on the request path; nothing is wrapped or
recorded per request. It is a diagnosis for logs, not a security boundary.
"""

from __future__ import annotations

__all__ = ["Blame"]

from types import CodeType, FrameType, ModuleType

import pluggy

from .api import FilterRegistry


class Blame:
    """``blame(error)``: ``{"plugin": name}`` (plus ``"filter"`` if a filter raised) or ``None``."""

    def __init__(self, pm: pluggy.PluginManager, filters: FilterRegistry) -> None:
        self._filters = filters.code_owners
        self._hooks: dict[CodeType, str] = {
            impl.function.__code__: impl.plugin_name
            for caller in vars(pm.hook).values()
            if isinstance(caller, pluggy.HookCaller)
            for impl in caller.get_hookimpls()
            if hasattr(impl.function, "__code__")
        }
        self._modules = _plugin_modules(pm)

    def __call__(self, error: BaseException) -> dict[str, str] | None:
        frames: list[FrameType] = []
        tb = error.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):  # innermost first: where it was raised
            code = frame.f_code
            hit = self._filters.get(code)
            if hit is not None:
                return {"plugin": hit[0], "filter": hit[1]}
            owner = self._hooks.get(code) or self._module_owner(
                str(frame.f_globals.get("__name__", ""))
            )
            if owner is not None:
                return {"plugin": owner}
        return None

    def _module_owner(self, module: str) -> str | None:
        while module:  # the module, then each package above it
            owner = self._modules.get(module)
            if owner is not None:
                return owner
            module = module.rpartition(".")[0]
        return None


def _plugin_modules(pm: pluggy.PluginManager) -> dict[str, str]:
    """Module (or package) name → the one plugin it belongs to; shared modules are left out,
    since a module holding two plugins (classes in one test file) cannot say which raised."""
    seen: dict[str, list[str]] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        if isinstance(plugin, ModuleType):
            module = plugin.__name__
        else:
            module = getattr(plugin if isinstance(plugin, type) else type(plugin), "__module__", "")
        if module:
            seen.setdefault(module, []).append(name)
    return {m: names[0] for m, names in seen.items() if len(names) == 1}

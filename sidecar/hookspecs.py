"""Every hook a sidecar plugin can implement, grouped by when it runs.

Hooks run at start-up and on config reload, never per request (the one exception is
:func:`sidecar_rescue`, called only when a call failed with an error nobody typed). Registration
hooks receive a registry and call ``registry.add(...)``; the host tells the registry which plugin is
calling, so a duplicate name is refused with both owners named.

Implement a hook with ``@sidecar.hookimpl`` in a module or class registered under the ``sidecar``
entry-point group. Each hook is documented in ``docs/plugins.md`` too; a test fails when one is not.
"""

from __future__ import annotations

__all__ = ["hookimpl", "hookspec"]

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .exchange import Exchange, Response
    from .registry import (
        AdapterRegistry,
        AdminRouteRegistry,
        ConfigRegistry,
        FilterRegistry,
        LifespanRegistry,
    )

hookspec = pluggy.HookspecMarker("sidecar")
hookimpl = pluggy.HookimplMarker("sidecar")


# --- declaring -------------------------------------------------------------------------------


@hookspec
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    """Declare the plugin's config section: ``registry.add("name", Model)``.

    Called once when the plugin host is built, before any config is validated. ``plugins.<name>``
    in the config file is validated with ``Model`` (a pydantic model; use ``extra="forbid"`` so
    typos fail), and the validated instance reaches the plugin's factories through
    ``RouteContext.plugin_config("name")``. A section nobody declared is a config error.
    All implementations are called.
    """


# --- registering -----------------------------------------------------------------------------


@hookspec
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    """Register protocol adapters: ``registry.add("name", AdapterClass)``.

    Called once when the plugin host is built. An adapter class is constructed once per running
    sidecar with its :class:`~sidecar.registry.AdapterServices` and builds the terminal handler of
    each upstream whose ``adapter:`` names it. ``AdapterClass.options_model`` (or ``None``)
    validates ``upstreams.<name>.options``. All implementations are called.
    """


@hookspec
def sidecar_register_filters(registry: FilterRegistry) -> None:
    """Register filters: ``registry.add("name", factory, order=500)``.

    Called once when the plugin host is built. ``factory(ctx: RouteContext)`` is called once per
    route whenever route handlers are composed (start-up and each reload) and returns a
    ``Filter`` or ``None`` when the filter has nothing to do on that route. Filters are placed by
    ``order`` (lower is outer; see ``sidecar.registry.ORDER_*`` for the built-ins' places).
    All implementations are called.
    """


@hookspec
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    """Register start-up/shutdown work: ``registry.add("name", factory)``.

    ``factory(sidecar)`` returns an async context manager, entered in registration order when the
    sidecar starts (before listeners accept) and exited in reverse order after they drained. An
    exception while entering stops start-up with the plugin's name in the message.
    All implementations are called.
    """


@hookspec
def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
    """Add routes to the admin port: ``registry.add("GET", "/path", handler)``.

    ``handler`` is an aiohttp handler ``async (request) -> web.Response``; the running
    :class:`~sidecar.app.Sidecar` is at ``request.app[SIDECAR]``. A path taken twice is refused
    with both owners named. All implementations are called.
    """


# --- per failed call -------------------------------------------------------------------------


@hookspec(firstresult=True)
def sidecar_rescue(exchange: Exchange, error: BaseException) -> Response | None:
    """Turn an unexpected error into a response; return ``None`` to let the next plugin try.

    Called by the outermost ``rescue`` filter only when a call raised something that is not a
    :class:`~sidecar.errors.SidecarError` (those have their own response). The first non-``None``
    result is used; with none, the app gets ``500`` and ``x-sidecar-error: internal``. Must not
    raise; keep it cheap. Stops at the first result.
    """

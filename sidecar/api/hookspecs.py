"""Every hook a sidecar plugin can implement, grouped by when it runs.

This module is the contract with plugin authors: each hook is named ``sidecar_*``, typed, and
says when it is called, what it receives, and whether the first result ends the call (pytest's
``hookspec.py`` habit). It holds declarations only; the plugin host
(:class:`~sidecar.plugins.PluginHost`) calls them through pluggy.

Hooks run when the plugin host is built (once per process), never per request; the one exception
is :func:`sidecar_rescue`, called only when a call failed with an error nobody typed. Registration
hooks receive a registry and call ``registry.add(...)``; the host calls each plugin's
implementation in its own pluggy call and tells the registry who is calling, so a duplicate name
is refused with both owners named and an exception names the plugin that raised it.

Implement a hook with ``@sidecar.hookimpl`` (a function named ``sidecar_*`` without the decorator
counts too, as in pytest) in a module or class registered under the ``sidecar`` entry-point group.
``tryfirst``/``trylast`` order the calls; wrappers are refused.

**Versions.** :data:`API_VERSION` is ``MAJOR.MINOR``. A minor version adds hooks, registry
methods or fields; nothing a plugin uses changes meaning within a major version. A hook to be
removed is first marked deprecated (:func:`deprecated`) for at least one minor version: pluggy
then warns when a plugin implementing it is registered, and the host logs the warning with the
plugin's name and the replacement. A plugin may declare the major version it was written for
(``SIDECAR_API = 1`` in its module); a plugin written for another major version is refused at
start-up with both versions named.

Every hook here is documented in ``docs/plugins.md``; a test fails when one is not.
"""

from __future__ import annotations

__all__ = [
    "API_VERSION",
    "deprecated",
    "hookimpl",
    "hookspec",
    "sidecar_declare_config",
    "sidecar_register_adapters",
    "sidecar_register_admin_routes",
    "sidecar_register_credentials",
    "sidecar_register_filters",
    "sidecar_register_fronts",
    "sidecar_register_lifespans",
    "sidecar_register_ratelimit_backends",
    "sidecar_rescue",
]

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ..exchange import Exchange, Response
    from .adapter import AdapterRegistry
    from .admin import AdminRouteRegistry
    from .config import ConfigRegistry
    from .credentials import CredentialRegistry
    from .filters import FilterRegistry
    from .fronts import FrontRegistry
    from .lifespans import LifespanRegistry
    from .ratelimit import RateLimitBackendRegistry

#: The plugin API's version, ``MAJOR.MINOR`` (see the module's "Versions").
API_VERSION = "1.1"

#: Marks the declarations below; the project name is also the entry-point group.
hookspec = pluggy.HookspecMarker("sidecar")
#: Marks a plugin's implementation: ``@hookimpl``, ``@hookimpl(trylast=True)``.
hookimpl = pluggy.HookimplMarker("sidecar")


class HookDeprecated(DeprecationWarning):
    """A plugin implements a hook that a later major version of the plugin API removes."""


def deprecated(hook: str, since: str, instead: str) -> HookDeprecated:
    """The ``warn_on_impl`` of a deprecated hook: ``@hookspec(warn_on_impl=deprecated(
    "sidecar_old", "1.2", "sidecar_new"))``. Implementing it still works until the next major
    version; the host logs the warning with the implementing plugin's name."""
    return HookDeprecated(
        f"{hook} is deprecated since plugin API {since} and goes in the next major version; "
        f"implement {instead} instead"
    )


# --- declaring: called once when the plugin host is built, before any config is validated ----


@hookspec
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    """Declare the plugin's config section: ``registry.add("name", Model)``.

    When: once, when the plugin host is built, before the config file is validated (so
    ``sidecar check`` validates plugin sections too).

    :param registry: ``add(name, model)`` where ``model`` is a pydantic model class. Use
        ``extra="forbid"`` so a typo fails. ``plugins.<name>`` in the config file is validated
        with it at start-up and on each reload; a problem is reported like any other config
        problem (``sidecar.yaml: plugins.<name>.<key>: unknown key``, exit 2). The validated
        instance reaches the plugin's factories as ``RouteContext.plugin_config(name, Model)``;
        an absent section is the model's defaults. A section nobody declared is a config error
        (unless its name is listed in ``plugins.disabled``).

    Every implementation is called. A section name taken twice is refused with both owners named.
    """


# --- registering: called once when the plugin host is built ----------------------------------


@hookspec
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    """Register protocol adapters: ``registry.add("name", AdapterClass)``.

    When: once, when the plugin host is built.

    :param registry: ``add(name, adapter_class)``. ``adapter_class`` subclasses
        :class:`~sidecar.api.Adapter`; it is constructed once per running sidecar with its
        :class:`~sidecar.api.AdapterServices` and builds the terminal handler of each
        upstream whose ``adapter:`` names it (at start-up and on each reload).
        ``adapter_class.options_model`` (a pydantic model, or ``None``) validates
        ``upstreams.<name>.options``.

    Every implementation is called. An adapter name taken twice is refused with both owners named;
    to replace a built-in adapter, disable its plugin (``plugins.disabled``) and register yours.
    """


@hookspec
def sidecar_register_filters(registry: FilterRegistry) -> None:
    """Register filters: ``registry.add("name", factory, phase=Phase.EXTEND)``.

    When: once, when the plugin host is built.

    :param registry: ``add(name, factory, phase=..., after=..., before=...)``.
        ``factory(ctx: RouteContext)`` is called once per route whenever route handlers are
        composed (start-up and each reload) and returns a ``Filter`` (``async (exchange,
        call_next) -> Response``) or ``None`` when the filter has nothing to do on that route,
        which costs that route nothing per request. ``phase`` (a :class:`~sidecar.api.Phase`,
        default ``EXTEND``) places the filter in every chain, or ``after``/``before`` names the
        filter it sits next to; outer filters run earlier on the way out and later on the way
        back (:mod:`sidecar.api.phases` says what each phase is for).

    Every implementation is called. A filter name taken twice is refused with both owners named.
    A factory that raises stops start-up (or refuses the reload) naming the plugin and the route;
    a filter that raises while handling a call makes that call a 500 and is logged with the
    plugin's and the filter's name.
    """


@hookspec
def sidecar_register_ratelimit_backends(registry: RateLimitBackendRegistry) -> None:
    """Register rate-limit backend types: ``registry.add("name", BackendClass)``.

    When: once, when the plugin host is built.

    :param registry: ``add(name, backend_class)``. ``backend_class`` subclasses
        :class:`~sidecar.ratelimit.RateLimitBackend`; ``ratelimit_backends.<b>.type: <name>``
        in the config uses it, and each such backend is constructed once per running sidecar,
        started when the sidecar starts and closed after it drained. It implements
        ``async decide(key, limit) -> Decision``; the sidecar bounds each decision by the
        backend's ``timeout`` and applies ``on_error`` when it raises or runs late.
        ``backend_class.options_model`` (a pydantic model, or ``None``) validates the backend's
        own keys; ``backend_class.url_schemes`` says which ``url`` schemes it takes. The
        built-in types are ``local`` and ``redis``.

    Every implementation is called. A type name taken twice is refused with both owners named.
    """


@hookspec
def sidecar_register_credentials(registry: CredentialRegistry) -> None:
    """Register credential provider types: ``registry.add("name", ProviderClass)``.

    When: once, when the plugin host is built.

    :param registry: ``add(name, provider_class)``. ``provider_class`` subclasses
        :class:`~sidecar.auth.CredentialProvider`; ``upstreams.<u>.auth.type: <name>`` in the
        config uses it. ``provider_class.settings_model`` (a pydantic model) validates the keys
        of ``upstreams.<u>.auth`` beside ``type`` and ``pass_through`` (each problem at its key
        path, by ``sidecar check`` too). One instance is built per upstream when routes are
        composed, and kept across reloads that leave the upstream's ``auth`` alone; it puts the
        credential on each call (``inject`` or ``async apply``), replacing the app's. The
        built-in types are ``api_key``, ``bearer``, ``basic``, ``oauth2_client_credentials`` and
        ``hmac``.

    Every implementation is called. A type name taken twice is refused with both owners named.
    """


@hookspec
def sidecar_register_fronts(registry: FrontRegistry) -> None:
    """Register fronts, what accepts calls: ``registry.add("name", factory)``.

    When: once, when the plugin host is built; the factories run when a sidecar starts.

    :param registry: ``add(name, factory)``. ``factory(ctx: FrontContext)`` returns a
        :class:`~sidecar.api.Front` (or ``None`` when the config does not ask for it). Each front
        composes its own routes with ``builder.chain(...)`` at start-up and on each reload, so
        its calls pass the same filters as every other front's, told by its
        :class:`~sidecar.api.FrontTraits` how it answers. Fronts start in registration order
        after every lifespan is up, and drain on shutdown. The built-in fronts are ``http``,
        ``grpc`` and ``inbound``.

    Every implementation is called. A front name taken twice is refused with both owners named.
    """


@hookspec
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    """Register start-up/shutdown work: ``registry.add("name", factory)``.

    When: once, when the plugin host is built; the factories run when a sidecar starts.

    :param registry: ``add(name, factory)``. ``factory(sidecar)`` returns an async context
        manager; ``sidecar`` is a read-only :class:`~sidecar.api.RuntimeView` (config,
        metrics, ``resources`` to publish objects for filter factories). It is entered in
        registration order when the sidecar starts, after adapters are built and before the
        fronts accept calls (the admin port is up, ``/readyz`` says 503), and exited in reverse
        order after the fronts drained. An exception while entering stops start-up with the
        plugin's name in the message (``sidecar run`` exits 1); one while exiting is logged with
        the plugin's name and the other lifespans still exit.

    Every implementation is called. A lifespan name taken twice is refused with both owners named.
    """


@hookspec
def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
    """Add routes to the admin port: ``registry.add("GET", "/path", handler)``.

    When: once, when the plugin host is built; the routes are served by each running sidecar.

    :param registry: ``add(method, path, handler)``. ``handler`` is an aiohttp handler
        ``async (request) -> web.StreamResponse``; the running sidecar is
        ``sidecar.runtime_of(request)``, a read-only :class:`~sidecar.api.ControlView`. A
        handler that raises answers 500 and is logged
        with the plugin's name; ``aiohttp.web.HTTPException`` passes through as usual.

    Every implementation is called. A method and path taken twice is refused with both owners
    named.
    """


# --- per failed call: the only hook that may run while serving --------------------------------


@hookspec(firstresult=True)
def sidecar_rescue(exchange: Exchange, error: BaseException) -> Response | None:
    """Turn an unexpected error into a response, or return ``None`` to let the next plugin try.

    When: by the outermost ``rescue`` filter, only when a call raised something that is not a
    :class:`~sidecar.errors.SidecarError` (those become their own response without asking).

    :param exchange: the call that failed, as the filter that raised left it.
    :param error: the exception.
    :returns: a :class:`~sidecar.exchange.Response` for the app, or ``None``.

    Stops at the first non-``None`` result. With none, the app gets ``500`` with
    ``x-sidecar-error: internal`` and the error is logged with the route and the plugin whose code
    raised it. Keep it cheap and do not raise: an implementation that raises is logged with its
    plugin's name and the next one is tried.
    """

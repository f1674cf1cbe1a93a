"""JWT validation for the sidecar: bearer tokens checked on the inbound listener (peers calling
the app) and, optionally, on calls the app makes through the HTTP port.

The section ``plugins.jwt`` (:class:`~sidecar_jwt.config.JwtConfig`) names providers (issuer,
audiences, algorithms, JWKS or static keys) and policies (where a provider applies, and what a
token must grant there). Without a policy for a route, the factory returns ``None`` and the
route pays nothing; PyJWT and cryptography are imported only when a route has a policy.
Imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

__all__ = ["NAME", "SIDECAR_API", "STORE", "JwtConfig", "make_filter"]

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sidecar import (
    ConfigError,
    ConfigProblem,
    ConfigRegistry,
    Filter,
    FilterRegistry,
    LifespanRegistry,
    RouteContext,
    RuntimeView,
    hookimpl,
)

from .config import JwtConfig

if TYPE_CHECKING:
    from .jwks import KeyStore

#: The plugin API major version this plugin is written for: another major refuses to load it.
SIDECAR_API = 1

#: the plugin's name: its entry point, its config section and its filter's name
NAME = "jwt"
#: where the lifespan publishes the running sidecar's JWKS caches (``runtime.resources``)
STORE = "sidecar_jwt.keys"


def make_filter(ctx: RouteContext) -> Filter | None:
    """The filter of one route, or ``None`` when no policy applies to it."""
    config = ctx.plugin_config(NAME, JwtConfig)
    if not config.providers:
        return None
    from .filter import build_filter, policy_for, strip_only, unknown_names  # PyJWT: now

    problem = unknown_names(ctx.config, config)
    if problem is not None:
        # a config problem, not a plugin failure: ``sidecar check`` exits 2 naming the key,
        # start-up stops and a reload is refused
        raise ConfigError([ConfigProblem(ctx.config_name, *problem)])
    policy = policy_for(ctx, config)
    if policy is None:
        # an unchecked inbound route (``null``) still removes what peers could forge
        return strip_only(config) if ctx.front.peer_identity and config.inbound else None
    return build_filter(config, policy, _store(ctx))


def _store(ctx: RouteContext) -> KeyStore:
    from .jwks import KeyStore

    store = ctx.resources.get(STORE)
    if isinstance(store, KeyStore):
        return store
    # no running sidecar (a unit test): caches of this context alone
    return KeyStore()


@asynccontextmanager
async def key_store(runtime: RuntimeView) -> AsyncIterator[None]:
    """The JWKS caches of this sidecar, kept across reloads, closed at shutdown. Cheap when
    nothing is configured: no session is opened and no library imported until a fetch."""
    from .jwks import KeyStore

    store = KeyStore()
    runtime.resources[STORE] = store
    try:
        yield
    finally:
        del runtime.resources[STORE]
        await store.close()


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add(NAME, JwtConfig)


@hookimpl
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add(NAME, key_store)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # right after the peer allow-list: an mTLS peer that may not call at all is refused first
    # (cheaper), and a call without a valid token takes no rate-limit token, no concurrency
    # slot, no deadline and no attempt
    registry.add(NAME, make_filter, after="peer_allow")

"""sidecar-saml: a SAML 2.0 service provider in front of a browser app (the inbound listener).

An unauthenticated browser ``GET`` is redirected to the IdP (HTTP-Redirect AuthnRequest,
RelayState = the original path); the IdP posts a signed Response to our ACS path, which the
plugin answers itself; a valid login becomes a sealed session cookie, and later calls reach the
app with the login's attributes in headers. Its section is ``plugins.saml``
(:class:`~.config.SamlConfig`); without ``idp`` it changes no call.

pysaml2 and ``cryptography`` are imported only when a route of the protected front is composed
with an ``idp``: a sidecar with the plugin installed and unconfigured never loads them. It
imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

from sidecar import (
    ConfigRegistry,
    Filter,
    FilterRegistry,
    Phase,
    RouteContext,
    SharedKey,
    hookimpl,
)

from .config import SamlConfig

#: The plugin API major version this plugin is written for: another major refuses to load it.
SIDECAR_API = 1

#: the plugin's name: its entry point, its config section and its filter's name
NAME = "saml"

#: the provider and the login stores, one per protected front's app, kept across reloads
STATE: SharedKey[object] = SharedKey("saml")


def make_filter(ctx: RouteContext) -> Filter | None:
    """The filter of one route, or ``None`` off the protected front or without an ``idp``."""
    cfg = ctx.plugin_config(NAME, SamlConfig)
    if cfg.idp is None or ctx.listener != cfg.listener or cfg.session is None:
        return None
    # the heavy imports happen here, once per composition, only when configured
    from .flow import SamlState, build_filter, new_state
    from .seal import Sealer

    state = ctx.shared(STATE, cfg.model_dump_json(), lambda: new_state(cfg))
    assert isinstance(state, SamlState)
    # the key is read at each composition (a reload picks up a rotated file); the validated
    # section already proved it readable
    sealer = Sealer(cfg.session.key.reveal())
    return build_filter(cfg, state, sealer)


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add(NAME, SamlConfig)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # ADMIT, inside the built-in admission filters: a peer not allowed never reaches it, and
    # the rate limits and the concurrency cap bound the logins (each runs xmlsec1) as well as
    # the calls; before EXTEND, so no plugin filter sees an unauthenticated call
    registry.add(NAME, make_filter, phase=Phase.ADMIT)

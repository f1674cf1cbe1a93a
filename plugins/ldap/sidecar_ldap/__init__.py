"""sidecar-ldap: HTTP Basic on the inbound listener, checked against an LDAP directory.

A peer's call to the app must carry ``Authorization: Basic``; the sidecar finds the user with a
service account, binds as the user with the password, reads the user's groups, applies the
route's groups rule and tells the app who called (``x-auth-user``, ``x-auth-dn``,
``x-auth-groups``). Its config section is ``plugins.ldap`` (:mod:`.config`); without a ``url``
the plugin changes no call. The filter is :mod:`.gate`, the directory :mod:`.directory`
(ldap3, imported only once configured). It imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

from sidecar import (
    AdminRouteRegistry,
    ConfigRegistry,
    FilterRegistry,
    LifespanRegistry,
    hookimpl,
)

from .config import LdapConfig
from .gate import NAME, make_filter
from .hub import hub_lifespan
from .status import ldap_status

#: The plugin API major version this plugin is written for: another major refuses to load it.
SIDECAR_API = 1

__all__ = ["SIDECAR_API", "LdapConfig", "make_filter"]


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add(NAME, LdapConfig)


@hookimpl
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    # the connection pools and caches, shared by the routes and closed when the sidecar stops
    registry.add(NAME, hub_lifespan)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # right after the peer allow-list: a peer refused by its certificate costs no directory
    # call, and a caller without a valid password takes no rate-limit token and no
    # concurrency slot of the app
    registry.add(NAME, make_filter, after="peer_allow")


@hookimpl
def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
    registry.add("GET", "/ldap", ldap_status)

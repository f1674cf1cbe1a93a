"""The ``inbound:`` section: the mTLS listener in front of the local app, its certificate and
which peers (by SPIFFE ID) may call which part of the app (docs/mtls.md).

Only the section's shape and the checks within it (every inbound route matches something and
has a name of its own). Its limits and timeouts are the ``http`` listener's keys
(:mod:`.listeners`); loading and rotating the certificate files is the TLS extension's.
"""

from __future__ import annotations

__all__ = ["InboundConfig", "InboundRoute", "InboundTLS"]

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from .base import Model
from .listeners import HttpListenerConfig
from .names import ConfigurableHeaderName, SpiffePattern, route_name
from .routes import RouteMatch
from .types import Address, PositiveDuration, show


class InboundTLS(Model):
    """``inbound.tls:``: the listener's certificate, and the CA its peers' certificates must
    come from. The files are re-read when they change (rotation, docs/mtls.md)."""

    cert: str
    key: str
    ca: str


class InboundRoute(Model):
    """``inbound.routes[i]:``: a part of the app with its own allow-list. Tried in file order,
    the first match wins; a call no route matches gets ``inbound.allow``."""

    #: labels metrics and logs; ``inbound-<i>`` when unset.
    name: str | None = None
    match: RouteMatch
    #: the peers (SPIFFE IDs or ``*``-suffix patterns) this route lets through.
    allow: list[SpiffePattern]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return route_name(v)


class InboundConfig(HttpListenerConfig):
    """``inbound:``: the mTLS listener in front of the local app (docs/mtls.md). Its limits and
    timeouts are the ``http`` listener's keys, with the same defaults."""

    #: the only listener that may bind a pod address: peers call it.
    address: Address = "0.0.0.0:15006"
    #: where the app listens (plain HTTP, on the loopback as a rule).
    app: Address
    tls: InboundTLS
    #: the peers (SPIFFE IDs or ``*``-suffix patterns) allowed where no route says otherwise.
    allow: list[SpiffePattern]
    routes: list[InboundRoute] = []
    #: the header that tells the app who called (``By=<our ID>;URI=<peer ID>``); whatever a
    #: peer sent under this name is removed first.
    identity_header: ConfigurableHeaderName = "x-forwarded-client-cert"
    #: the whole call to the app.
    timeout: PositiveDuration = 15.0

    @field_validator("routes")
    @classmethod
    def _routes(cls, routes: list[InboundRoute]) -> list[InboundRoute]:
        seen: dict[str, int] = {}
        for i, route in enumerate(routes):
            m = route.match
            if m.path_prefix is None and m.host is None and not m.headers:
                raise PydanticCustomError(
                    "inbound_route",
                    "routes[{i}].match matches nothing: give path_prefix, host or headers",
                    {"i": i},
                )
            name = route.name or f"inbound-{i}"
            first = seen.setdefault(name, i)
            if first != i or name == "inbound":
                raise PydanticCustomError(
                    "inbound_route",
                    "routes[{i}].name: {name} is taken (by routes[{first}], or by the default "
                    'route "inbound")',
                    {"i": i, "name": show(name), "first": first},
                )
        return routes

"""The names config keys accept: upstream, route and gRPC service names, header names, SPIFFE IDs.

Each is checked once at load time and kept in its normal form (header names lowercase, SPIFFE
patterns parsed), so request code compares plain strings. This module holds only the checks and
the annotated types built on them; the sections that use them live in the other model modules.
Header *values*, durations, sizes, addresses and secret references are :mod:`.types`.
"""

from __future__ import annotations

__all__ = [
    "GRPC_SERVICE",
    "HEADER_NAME",
    "RESERVED_HEADERS",
    "ROUTE_NAME",
    "route_name",
    "UPSTREAM_NAME",
    "ConfigurableHeaderName",
    "GrpcServiceName",
    "HeaderName",
    "SpiffePattern",
    "UpstreamName",
    "one_spelling_per_header",
]

import re
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from ..http1 import HOP_BY_HOP
from ..tls.spiffe import SpiffeError, parse_pattern
from .types import show

#: Upstream names appear as the first path segment (``/payments/...``), are matched against the
#: ``Host`` header (case-insensitively, hence lowercase) and label metrics.
UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
#: Route names label metrics and logs.
ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def route_name(v: str | None) -> str | None:
    """A route's ``name`` (``routes[i]`` and ``inbound.routes[i]``), checked against
    :data:`ROUTE_NAME`."""
    if v is not None and not ROUTE_NAME.match(v):
        raise PydanticCustomError(
            "route_name",
            "a route name is letters, digits, '.', '_' or '-', got {got}",
            {"got": show(v)},
        )
    return v


#: An HTTP field name (RFC 9110 §5.1 token).
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Headers the sidecar itself owns on the way upstream: setting them from config would break
#: message framing (content-length, transfer-encoding), the connection (hop-by-hop) or routing
#: (host has its own key, ``upstreams.<name>.host``).
RESERVED_HEADERS = HOP_BY_HOP | {"host"}


def _header_name(name: str) -> str:
    if not HEADER_NAME.match(name):
        raise PydanticCustomError("header_name", "not a header name: {got}", {"got": show(name)})
    return name.lower()


def _configurable_header_name(name: str) -> str:
    name = _header_name(name)
    if name in RESERVED_HEADERS:
        raise PydanticCustomError(
            "header_name", "the sidecar sets {got} itself; it cannot be configured", {"got": name}
        )
    return name


def _upstream_name(name: str) -> str:
    if not UPSTREAM_NAME.match(name):
        raise PydanticCustomError(
            "upstream_name",
            "an upstream name is lowercase letters, digits, '.', '_' or '-' "
            "(it is matched against paths and Host headers), got {got}",
            {"got": show(name)},
        )
    return name


#: A fully qualified protobuf service name.
GRPC_SERVICE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _grpc_service(name: str) -> str:
    if not GRPC_SERVICE.match(name):
        raise PydanticCustomError(
            "grpc_service",
            'expected a fully qualified gRPC service name like "payments.v1.Payments", got {got}',
            {"got": show(name)},
        )
    return name


def _spiffe_pattern(value: str) -> str:
    try:
        return parse_pattern(value)
    except SpiffeError as e:
        raise PydanticCustomError("spiffe_id", "{reason}", {"reason": str(e)}) from None


#: A SPIFFE ID or a ``*``-suffix pattern of them (``spiffe://cluster.local/ns/shop/sa/*``).
SpiffePattern = Annotated[str, AfterValidator(_spiffe_pattern)]

#: Header names are compared without case, so they are kept lowercase.
HeaderName = Annotated[str, AfterValidator(_header_name)]
ConfigurableHeaderName = Annotated[str, AfterValidator(_configurable_header_name)]
UpstreamName = Annotated[str, AfterValidator(_upstream_name)]
GrpcServiceName = Annotated[str, AfterValidator(_grpc_service)]


def one_spelling_per_header(raw: Any) -> Any:
    """Two spellings of one header name (``X-Key`` and ``x-key``) would silently collapse."""
    if isinstance(raw, dict):
        seen: dict[str, str] = {}
        for key in raw:
            if isinstance(key, str):
                prior = seen.setdefault(key.lower(), key)
                if prior != key:
                    raise PydanticCustomError(
                        "header_name",
                        "{a} and {b} are the same header (names ignore case)",
                        {"a": show(prior), "b": show(key)},
                    )
    return raw

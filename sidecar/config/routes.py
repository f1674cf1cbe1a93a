"""Explicit routes, ``routes[i]:``: which calls go to which upstream, and the per-route overrides
of that upstream's policies.

Only the shape of a route and of its ``match``. How a call is matched against them at run time
is the router's; whether ``routes[i].upstream`` names a configured upstream is checked across
keys (:mod:`.checks`). ``RouteMatch`` is also the match of an inbound route (:mod:`.inbound`).
"""

from __future__ import annotations

__all__ = ["RouteConfig", "RouteMatch"]

from typing import ClassVar

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from .base import Model
from .fault import FaultPolicy
from .names import HeaderName, one_spelling_per_header, route_name
from .policies import GlobalRateLimitPolicy, RateLimitPolicy, RetryPolicy, VerifyHmacPolicy
from .types import HeaderValue, PositiveDuration, show


class RouteMatch(Model):
    """``routes[i].match:``: all given conditions must hold."""

    #: path prefix on segment boundaries: ``/pay`` matches ``/pay`` and ``/pay/x``, not ``/payx``.
    path_prefix: str | None = None
    #: ``Host`` (port ignored, case-insensitive).
    host: str | None = None
    #: exact header values (names ignore case).
    headers: dict[HeaderName, HeaderValue] = {}

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith("/"):
            raise PydanticCustomError(
                "prefix", 'a path prefix starts with "/", got {got}', {"got": show(v)}
            )
        return v.rstrip("/") or "/"

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v or any(c in v for c in "/ \t@"):
            raise PydanticCustomError(
                "host", 'expected a host name like "api.example.com", got {got}', {"got": show(v)}
            )
        return v.lower()

    _headers_once = field_validator("headers", mode="before")(one_spelling_per_header)


class RouteConfig(Model):
    """``routes[i]:``: an explicit route; ``/<upstream>/...`` and ``Host: <upstream>`` work
    without one. Explicit routes are tried first, in file order; the first match wins."""

    #: labels metrics and logs; ``route-<i>`` when unset.
    name: str | None = None
    match: RouteMatch
    #: the upstream it sends to (a name under ``upstreams``).
    upstream: str
    #: replace the matched ``path_prefix`` with this before forwarding (kept when unset).
    prefix_rewrite: str | None = None
    #: per-route overrides of the upstream's policies (unset: the upstream's). The breaker and
    #: the concurrency limit protect the upstream as a whole, so they are per upstream only.
    timeout: PositiveDuration | None = None
    retry: RetryPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    global_rate_limit: GlobalRateLimitPolicy | None = None
    verify_hmac: VerifyHmacPolicy | None = None
    fault: FaultPolicy | None = None

    #: the keys above that override the upstream's.
    OVERRIDES: ClassVar[tuple[str, ...]] = (
        "timeout",
        "retry",
        "rate_limit",
        "global_rate_limit",
        "verify_hmac",
        "fault",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return route_name(v)

    @field_validator("prefix_rewrite")
    @classmethod
    def _rewrite(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise PydanticCustomError(
                "prefix", 'a prefix rewrite starts with "/", got {got}', {"got": show(v)}
            )
        return v

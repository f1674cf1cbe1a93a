"""Resilience policy sections: ``retry``, ``circuit_breaker``, ``concurrency``, ``rate_limit``,
``global_rate_limit`` (per upstream, the first three and the limits overridable per route) and
``ratelimit_backends`` (top level).

Retries, the breaker and the concurrency limit are on by default, with bounded values; rate
limits are off unless configured. Every policy has ``enabled`` so it can be turned
off explicitly. Conditions (``retry.on``, ``circuit_breaker.failure_on``) are names the adapter's
classifier produces: ``connect-failure``, ``reset``, ``timeout``, ``protocol``, a status code
(``503``) or a class (``5xx``), a gRPC status name (``unavailable``, ``deadline-exceeded``; also
accepted as gRPC spells them, ``DEADLINE_EXCEEDED``); adapters may add their own names.
"""

from __future__ import annotations

__all__ = [
    "AuthPolicy",
    "Backoff",
    "CircuitBreakerPolicy",
    "ConcurrencyPolicy",
    "GlobalRateLimitPolicy",
    "Rate",
    "RateLimitBackendConfig",
    "RateLimitPolicy",
    "RetryBudget",
    "RetryPolicy",
    "SecretByReference",
    "VerifyHmacPolicy",
]

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .base import Model
from .types import Duration, PositiveDuration, SecretRef, Size, show
from .webhook_secrets import whsec_problem

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


class RateValue(NamedTuple):
    """``requests`` per ``period`` seconds (``100/s`` → (100, 1.0))."""

    requests: float
    period: float

    @property
    def per_second(self) -> float:
        return self.requests / self.period

    @property
    def default_burst(self) -> int:
        """The rate's own count for its period, whole and at least 1 (``10/min`` → 10): the
        default ``burst``, so a quota of N calls per period admits N calls at once."""
        return max(1, math.ceil(self.requests))

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h", 0.001: "ms"}.get(self.period)
        n = int(self.requests) if self.requests == int(self.requests) else self.requests
        return f"{n}/{unit}" if unit else f"{n}/{self.period}s"


def parse_rate(value: Any) -> RateValue:
    if isinstance(value, RateValue):
        return value
    if isinstance(value, str):
        m = _RATE.match(value)
        if m and float(m.group(1)) > 0:
            return RateValue(float(m.group(1)), _PERIODS[m.group(2)])
    raise PydanticCustomError(
        "rate", 'expected a rate like "100/s" or "1000/min", got {got}', {"got": show(value)}
    )


Rate = Annotated[RateValue, BeforeValidator(parse_rate), PlainSerializer(str)]

#: Condition names every adapter's classifier may produce (plus status codes and ``Nxx``).
KNOWN_CONDITIONS = frozenset({"connect-failure", "tls", "reset", "timeout", "protocol"})
#: The gRPC adapter's conditions: the non-OK status codes' names (:mod:`sidecar.grpc.wire`).
GRPC_CONDITIONS = frozenset(
    {
        "cancelled",
        "unknown",
        "invalid-argument",
        "deadline-exceeded",
        "not-found",
        "already-exists",
        "permission-denied",
        "resource-exhausted",
        "failed-precondition",
        "aborted",
        "out-of-range",
        "unimplemented",
        "internal",
        "unavailable",
        "data-loss",
        "unauthenticated",
    }
)
_STATUS_CLASS = re.compile(r"^[1-5]xx$")


def _condition(value: Any) -> str:
    if isinstance(value, bool):
        pass
    elif isinstance(value, int) and 100 <= value <= 599:
        return str(value)
    elif isinstance(value, str):
        # gRPC writes its codes RESOURCE_EXHAUSTED (service configs, Envoy's docs): same name
        v = value.strip().lower().replace("_", "-")
        if v.isdigit() and 100 <= int(v) <= 599:
            return v
        if _STATUS_CLASS.match(v) or re.fullmatch(r"[a-z][a-z0-9_-]*", v):
            return v
    raise PydanticCustomError(
        "condition",
        "expected a condition like connect-failure, reset, timeout, 503, 5xx or unavailable, "
        "got {got}",
        {"got": show(value)},
    )


Condition = Annotated[str, BeforeValidator(_condition)]


class Backoff(Model):
    """Full-jitter exponential backoff: retry n waits uniform(0, min(max, base·2ⁿ⁻¹))."""

    base: PositiveDuration = 0.025
    max: PositiveDuration = 0.25

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.max < self.base:
            raise PydanticCustomError("backoff", "max must be at least base")
        return self


class RetryBudget(Model):
    """Retries of one upstream are at most ``ratio`` × its requests + ``min_retries`` over the
    last ``window`` (Finagle/Linkerd budgets): a failing upstream gets at most that share of
    extra calls, and a quiet one still gets a few retries."""

    ratio: float = Field(0.2, ge=0.0, le=10.0)
    #: retries always allowed per window, however few requests it saw.
    min_retries: int = Field(3, ge=0, le=10_000)
    window: PositiveDuration = 10.0


class RetryPolicy(Model):
    """``upstreams.<name>.retry`` (and ``routes[i].retry``)."""

    enabled: bool = True
    #: attempts in all, the first included (3 = 2 retries).
    attempts: int = Field(3, ge=1, le=10)
    #: each attempt's own budget; unset: only the overall ``timeout``.
    per_try_timeout: PositiveDuration | None = None
    backoff: Backoff = Backoff()
    #: what is retried (the adapter's condition names). ``timeout`` is an attempt cut by
    #: ``per_try_timeout`` or ``response_header_timeout`` (the overall deadline leaves no time);
    #: ``unavailable`` is gRPC's UNAVAILABLE (the only code gRFC A6 deems safe by itself).
    on: list[Condition] = [
        "connect-failure",
        "reset",
        "timeout",
        "502",
        "503",
        "504",
        "unavailable",
    ]
    #: POST/PATCH (and other non-idempotent methods) retried without an ``Idempotency-Key``.
    non_idempotent: bool = False
    #: request bodies up to this size are kept for replay; larger or unknown-length ones are not
    #: retried.
    buffer: Size = Field(64 * 1024, le=16 * 1024 * 1024)
    #: wait what the upstream's ``Retry-After`` asks (if it fits the deadline).
    honor_retry_after: bool = True
    budget: RetryBudget = RetryBudget()


class CircuitBreakerPolicy(Model):
    """``upstreams.<name>.circuit_breaker``: closed → open → half-open → closed.

    Closed, it trips after ``consecutive_failures`` failures in a row, or (with ``failure_ratio``)
    when that share of the calls over ``window`` failed and there were at least ``min_requests``.
    Open, every call is refused at once (503 ``circuit_open``) for ``open_for``; then it lets
    ``half_open_requests`` trial calls through: that many successes close it, one failure opens it
    again for twice as long as the last time, up to ``max_open_for``.
    """

    enabled: bool = True
    #: trip after this many failures in a row.
    consecutive_failures: int = Field(5, ge=1, le=100_000)
    #: also trip when the failure ratio over ``window`` reaches this (with ``min_requests``).
    failure_ratio: float | None = Field(None, gt=0.0, le=1.0)
    window: PositiveDuration = 10.0
    min_requests: int = Field(20, ge=1)
    #: how long it stays open the first time; each re-open doubles it up to ``max_open_for``.
    open_for: PositiveDuration = 30.0
    max_open_for: PositiveDuration = 300.0
    #: trial calls let through at once while half-open; this many successes close the breaker.
    half_open_requests: int = Field(1, ge=1, le=1000)
    #: what counts as a failure (the adapter's condition names). The gRPC codes are those
    #: that say the upstream itself failed (Envoy's outlier detection maps them to 5xx); codes
    #: about the call (NOT_FOUND, INVALID_ARGUMENT...) or the caller (RESOURCE_EXHAUSTED,
    #: UNAUTHENTICATED, CANCELLED) are answers, not failures.
    failure_on: list[Condition] = [
        "connect-failure",
        "tls",
        "reset",
        "timeout",
        "protocol",
        "5xx",
        "unavailable",
        "deadline-exceeded",
        "internal",
        "unknown",
        "data-loss",
    ]

    @model_validator(mode="after")
    def _cap(self) -> CircuitBreakerPolicy:
        if self.max_open_for < self.open_for:
            raise PydanticCustomError(
                "open_for_cap", "max_open_for must be at least open_for (it caps its growth)"
            )
        return self


class ConcurrencyPolicy(Model):
    """``upstreams.<name>.concurrency``: in-flight calls to the upstream (load shedding).

    A call holds its slot until the upstream's response head (or error) is back. Past
    ``max_in_flight`` a call is refused at once with 503 ``overloaded``, unless ``queue`` allows
    it to wait (first come, first served) for up to ``max_wait``.
    """

    enabled: bool = True
    max_in_flight: int = Field(1024, ge=1, le=1_000_000)
    #: calls allowed to wait for a slot (0: shed at once with 503 ``overloaded``).
    queue: int = Field(0, ge=0, le=100_000)
    #: how long a queued call waits before it is shed.
    max_wait: PositiveDuration = 1.0


RateKey = Annotated[
    str, Field(pattern=r"^(upstream|route|peer|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$")
]


class RateLimitPolicy(Model):
    """``upstreams.<name>.rate_limit``: a local token bucket (and ``routes[i].rate_limit``)."""

    enabled: bool = True
    rate: Rate
    #: bucket size: requests allowed at once after a quiet spell; unset: the rate's own count
    #: for its period (``10/min`` → 10, ``100/s`` → 100), as a per-minute quota is understood.
    burst: int | None = Field(None, ge=1)
    #: what one bucket counts: ``upstream``, ``route``, ``peer`` (the app's address) or
    #: ``header:<name>`` (one bucket per value; a missing header shares one bucket).
    key: RateKey = "upstream"
    #: buckets kept (least recently used dropped first).
    max_keys: int = Field(10_000, ge=1, le=1_000_000)
    #: ``reject``: 429 at once; ``wait``: wait up to ``max_wait`` for a token, then 429.
    on_limit: Literal["reject", "wait"] = "reject"
    max_wait: Duration = 1.0
    #: calls waiting for a token at once (``wait``), all keys together; past it: 429 at once.
    max_waiting: int = Field(1000, ge=1, le=1_000_000)
    #: count what would be limited, limit nothing.
    shadow: bool = False

    @field_validator("key")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @property
    def bucket_size(self) -> int:
        """``burst``, or the rate's own count for its period (:attr:`RateValue.default_burst`)."""
        return self.burst or self.rate.default_burst


class GlobalRateLimitPolicy(Model):
    """``upstreams.<name>.global_rate_limit``: one limit shared by every replica."""

    enabled: bool = True
    #: a name under ``ratelimit_backends``.
    backend: str
    rate: Rate
    #: requests allowed at once (GCRA tolerance); unset: the rate's own count for its period.
    burst: int | None = Field(None, ge=1)
    key: RateKey = "upstream"
    #: count what would be limited, limit nothing.
    shadow: bool = False

    @field_validator("key")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @property
    def bucket_size(self) -> int:
        """``burst``, or the rate's own count for its period (:attr:`RateValue.default_burst`)."""
        return self.burst or self.rate.default_burst


#: A secret field that takes only ``{env: NAME}`` / ``{file: PATH}`` (``SecretRef`` refuses
#: anything else without repeating it); the name says so where a field is declared.
SecretByReference = SecretRef


class RateLimitBackendConfig(Model):
    """``ratelimit_backends.<name>``: where global limits are decided."""

    model_config = ConfigDict(extra="allow", frozen=True)

    #: a registered backend type: ``local``, ``redis`` (built in) or a plugin's.
    type: str
    #: e.g. ``redis://host:6379/0``; which schemes work is the backend's call. No password here:
    #: ``/config`` shows the URL.
    url: str | None = None
    #: the backend's password, by reference (``{env: NAME}`` or ``{file: PATH}``).
    password: SecretByReference | None = None
    #: time budget of one decision; past it the ``on_error`` rule applies.
    timeout: PositiveDuration = 0.020
    #: backend slow or down: ``allow`` (fail open, the default) or ``deny`` (fail closed, 503).
    on_error: Literal["allow", "deny"] = "allow"

    def options(self) -> dict[str, Any]:
        """Backend-specific keys beyond the common ones (validated by the backend)."""
        return dict(self.model_extra or {})

    @field_validator("url")
    @classmethod
    def _no_password(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            password = urlsplit(v).password
        except ValueError:
            password = None
        if password is not None:
            # the message does not repeat the URL: it holds a credential
            raise PydanticCustomError(
                "url",
                "a backend URL carries no password: give it as password: {env: NAME} "
                "or {file: PATH}",
            )
        return v


# --- credentials (docs/credentials.md) ---------------------------------------------------------


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _header_name(value: Any) -> Any:
    if isinstance(value, str) and _HEADER_NAME.match(value):
        return value.lower()
    raise PydanticCustomError("header_name", "not a header name: {got}", {"got": show(value)})


#: A request header the sidecar reads (names ignore case, so kept lower-case).
ReadHeaderName = Annotated[str, BeforeValidator(_header_name)]


class AuthPolicy(Model):
    """``upstreams.<name>.auth``: the credential the sidecar puts on every call.

    ``type`` names a registered credential provider (``api_key``, ``bearer``, ``basic``,
    ``oauth2_client_credentials``, ``hmac`` are built in; plugins add more); the provider's own
    keys sit beside it and are validated by the provider's model (:mod:`sidecar.auth.checks`),
    each problem at its key path (``upstreams.x.auth.token_url``).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    #: when the app sent the credential the provider sets (its header), forward the app's
    #: unchanged and inject nothing; false (the default): the app's is always replaced.
    pass_through: bool = False

    def options(self) -> dict[str, Any]:
        """The provider's own keys (everything but ``type`` and ``pass_through``)."""
        return dict(self.model_extra or {})


class VerifyHmacPolicy(Model):
    """``upstreams.<name>.verify_hmac`` (and ``routes[i].verify_hmac``): inbound webhook
    verification. A call must carry a fresh timestamp and an HMAC-SHA256 signature by one of the
    configured secrets, in the ``scheme``'s form; otherwise 401 ``signature_invalid``. A call
    seen before within the window (same signature, or same ``webhook-id``) is a replay, refused
    too (docs/credentials.md).
    """

    enabled: bool = True
    #: ``sidecar``: the string-to-sign of docs/credentials.md (``X-Signature``, ``X-Timestamp``);
    #: ``standard-webhooks``: ``webhook-id``/``-timestamp``/``-signature`` (standardwebhooks.com).
    scheme: Literal["sidecar", "standard-webhooks"] = "sidecar"
    #: the shared secret, by reference (a file is re-read when it changes).
    secret: SecretByReference | None = None
    #: several secrets at once (rotation): a call signed by any one of them passes.
    secrets: list[SecretByReference] = Field(default_factory=list, max_length=8)
    #: the header carrying ``<prefix><hex signature>`` (scheme ``sidecar``).
    header: ReadHeaderName = "x-signature"
    #: the header carrying the Unix time (seconds) the sender signed at (scheme ``sidecar``).
    timestamp_header: ReadHeaderName = "x-timestamp"
    #: what comes before the hex digits in ``header`` (scheme ``sidecar``).
    prefix: str = "sha256="
    #: how far the timestamp may be from the sidecar's clock, either way.
    max_skew: PositiveDuration = 300.0
    #: the body is read whole to be verified: larger ones are refused (413).
    max_body: Size = Field(1024 * 1024, ge=0, le=64 * 1024 * 1024)
    #: signatures (or webhook ids) remembered in this process to refuse replays within
    #: ``max_skew`` (oldest forgotten first); 0 turns replay protection off.
    replay_cache: int = Field(10_000, ge=0, le=10_000_000)
    #: a ``ratelimit_backends`` entry of type ``redis``: replays are refused there instead, so
    #: every replica sharing it agrees (unreachable: 503, fail closed).
    replay_backend: str | None = None

    @model_validator(mode="after")
    def _secrets_and_scheme(self) -> VerifyHmacPolicy:
        if (self.secret is None) == (not self.secrets):
            raise PydanticCustomError(
                "secrets", "give the secret as secret: {env|file} or secrets: [...], one of them"
            )
        if self.scheme == "standard-webhooks":
            fixed = sorted({"header", "timestamp_header", "prefix"} & self.model_fields_set)
            if fixed:
                raise PydanticCustomError(
                    "scheme",
                    "{keys}: the Standard Webhooks headers are fixed by the spec (webhook-id, "
                    "webhook-timestamp, webhook-signature)",
                    {"keys": ", ".join(fixed)},
                )
        return self

    @property
    def all_secrets(self) -> list[tuple[str, SecretRef]]:
        """Every configured secret with its key path under the policy (``secrets.1``)."""
        if self.secret is not None:
            return [("secret", self.secret)]
        return [(f"secrets.{i}", ref) for i, ref in enumerate(self.secrets)]

    def secret_check(self, field: str) -> Callable[[str], str | None] | None:
        """Why a value of ``field``'s secrets cannot be used (``sidecar check`` asks)."""
        if self.scheme == "standard-webhooks" and field in ("secret", "secrets"):
            return whsec_problem
        return None

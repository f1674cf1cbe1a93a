"""One ``upstreams.<name>:`` entry: where a named destination is, how to connect to it (pool,
TLS, timeouts), what is added to every call (``Host``, headers, credential) and which
resilience policies guard it.

The policy sections themselves (``retry``, ``circuit_breaker``, rate limits, ``auth``...) are
:mod:`.policies`; the name an upstream may have is :mod:`.names`; which calls reach it is
:mod:`.routes`. An adapter's own ``options`` stay raw here and are validated by that adapter.
"""

from __future__ import annotations

__all__ = ["PoolConfig", "UpstreamConfig", "UpstreamTLS"]

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .base import Model
from .cassette import CassetteConfig
from .fault import FaultPolicy
from .names import (
    ConfigurableHeaderName,
    GrpcServiceName,
    SpiffePattern,
    one_spelling_per_header,
)
from .policies import (
    AuthPolicy,
    CircuitBreakerPolicy,
    ConcurrencyPolicy,
    GlobalRateLimitPolicy,
    RateLimitPolicy,
    RetryPolicy,
    VerifyHmacPolicy,
)
from .types import HeaderValue, HeaderValueOrSecret, PositiveDuration, show


class PoolConfig(Model):
    """``upstreams.<name>.pool:``: the bounded keep-alive connection pool of one upstream."""

    #: connections open at once (idle + busy): with HTTP/1.1 this is the upstream's in-flight
    #: limit (1024 by default, like Envoy's default circuit-breaker ``max_requests``). A call
    #: past it waits up to ``connect_timeout``, then gets 503.
    max_connections: int = Field(1024, ge=1, le=100_000)
    #: idle connections kept for reuse; unset: up to ``max_connections`` (Envoy's way: idle
    #: ones close on ``idle_timeout`` only, so a load above a fixed cap does not churn them).
    max_idle: int | None = Field(None, ge=0, le=100_000)
    #: an idle connection is closed after this long.
    idle_timeout: PositiveDuration = 60.0


class UpstreamTLS(Model):
    """``upstreams.<name>.tls:``: TLS toward the upstream (``https://`` URLs)."""

    #: CA bundle to verify the server; the system CAs when unset.
    ca: str | None = None
    #: client certificate and key (mTLS), given together.
    cert: str | None = None
    key: str | None = None
    #: SNI and the name checked in the server certificate; the URL's host when unset.
    server_name: str | None = None
    #: verify the server certificate and host name. Turning this off is for tests only.
    verify: bool = True
    #: the SPIFFE ID the server must present (exact, or a ``*``-suffix pattern), checked after
    #: the handshake instead of the host name (docs/mtls.md); unset: the host name is checked.
    spiffe_id: SpiffePattern | None = None

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTLS:
        if (self.cert is None) != (self.key is None):
            raise PydanticCustomError("tls_pair", "cert and key must be given together")
        if self.spiffe_id is not None and not self.verify:
            raise PydanticCustomError(
                "tls_spiffe", "spiffe_id needs verify: true (an unverified ID proves nothing)"
            )
        return self


class UpstreamConfig(Model):
    """``upstreams.<name>:``: a named destination."""

    #: where it is: ``http://host:port`` or ``https://host:port``, optionally with a base path
    #: that is prepended to every forwarded path. Which schemes work is the adapter's call.
    url: str | None = None
    #: the adapter that speaks to it: ``http`` unless said otherwise.
    adapter: str = "http"
    #: the whole call's budget, all attempts included.
    timeout: PositiveDuration = 15.0
    #: time to open a connection (TCP and TLS), and to wait for a free one when the pool is full.
    connect_timeout: PositiveDuration = 5.0
    #: time to wait for the response head once the request was sent; unset: only ``timeout``.
    response_header_timeout: PositiveDuration | None = None
    pool: PoolConfig = PoolConfig()
    tls: UpstreamTLS | None = None
    #: ``Host`` sent upstream; the URL's authority when unset.
    host: HeaderValue | None = None
    #: headers set on every request (replacing the app's); values may be secret references.
    request_headers: dict[ConfigurableHeaderName, HeaderValueOrSecret] = {}
    #: resilience policies (docs/resilience.md). Retries, the breaker and the
    #: concurrency limit are on by default; rate limits only when configured.
    retry: RetryPolicy = RetryPolicy()
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy()
    rate_limit: RateLimitPolicy | None = None
    global_rate_limit: GlobalRateLimitPolicy | None = None
    #: fully qualified gRPC services (``payments.v1.Payments``) the gRPC listener routes here.
    services: list[GrpcServiceName] = []
    #: the credential put on every call (docs/credentials.md); none when unset.
    auth: AuthPolicy | None = None
    #: inbound verification of signed calls (webhooks); off when unset.
    verify_hmac: VerifyHmacPolicy | None = None
    #: injected delays and aborts (docs/resilience.md); unset: no fault filter in the chain.
    fault: FaultPolicy | None = None
    #: record this upstream's calls to a file, or replay them from it (docs/testing-plugins.md);
    #: off when unset.
    cassette: CassetteConfig | None = None
    #: adapter-specific options, validated by the adapter's own model.
    options: dict[str, Any] = {}

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or not parts.scheme or not parts.hostname or " " in v:
            raise PydanticCustomError(
                "url", 'expected a URL like "http://host:port", got {got}', {"got": show(v)}
            )
        if "@" in parts.netloc:
            # the message does not repeat the URL: it holds a credential
            raise PydanticCustomError(
                "url",
                "an upstream URL carries no credentials: put them in request_headers "
                "as a secret reference ({env: NAME} or {file: PATH})",
            )
        if parts.query or parts.fragment:
            raise PydanticCustomError(
                "url", "an upstream URL has no query or fragment, got {got}", {"got": show(v)}
            )
        return v

    _request_headers_once = field_validator("request_headers", mode="before")(
        one_spelling_per_header
    )

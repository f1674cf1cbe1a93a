"""The config file's shape, as frozen pydantic models (docs/configuration.md documents it).

Unknown keys are rejected everywhere (``extra="forbid"``) so a typo fails at load time with its
key path. Plugin sections under ``plugins:`` are kept raw here and validated by the model each
plugin declares (see :mod:`sidecar.config.loader`). New features add their keys here.
"""

from __future__ import annotations

__all__ = [
    "RESERVED_HEADERS",
    "UPSTREAM_NAME",
    "AccessLogConfig",
    "AdminConfig",
    "GrpcFloodConfig",
    "GrpcListenerConfig",
    "HttpListenerConfig",
    "InboundConfig",
    "InboundRoute",
    "InboundTLS",
    "Model",
    "PluginsConfig",
    "PoolConfig",
    "RouteConfig",
    "RouteMatch",
    "ShutdownConfig",
    "SidecarConfig",
    "TelemetryConfig",
    "TracingConfig",
    "UpstreamConfig",
    "UpstreamTLS",
]

import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..http1 import HOP_BY_HOP
from ..tls.spiffe import SpiffeError, parse_pattern
from .base import Model
from .policies import (
    AuthPolicy,
    CircuitBreakerPolicy,
    ConcurrencyPolicy,
    GlobalRateLimitPolicy,
    RateLimitBackendConfig,
    RateLimitPolicy,
    RetryPolicy,
    VerifyHmacPolicy,
)
from .types import (
    Address,
    Duration,
    HeaderValue,
    HeaderValueOrSecret,
    LoopbackAddress,
    PositiveDuration,
    Size,
    parse_duration,
    show,
)

#: Upstream names appear as the first path segment (``/payments/...``), are matched against the
#: ``Host`` header (case-insensitively, hence lowercase) and label metrics.
UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
#: Route names label metrics and logs.
ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
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


def _no_twice(raw: Any) -> Any:
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


class AdminConfig(Model):
    """``admin:``: the ops port (``/healthz``, ``/readyz``, ``/metrics``, ``/config``...)."""

    #: loopback only: ``/config`` and the plugin routes are not for the network.
    address: LoopbackAddress = "127.0.0.1:15000"
    #: off when unset. A second port serving only ``/metrics``, ``/healthz`` and ``/readyz``, which
    #: may bind the pod address (``0.0.0.0:15030``) so Prometheus and kubelet probes reach it.
    metrics_address: Address | None = None


class HttpListenerConfig(Model):
    """``http:``: the app-facing HTTP/1.1 egress listener."""

    #: loopback only: whoever reaches it calls upstreams with the sidecar's credentials.
    address: LoopbackAddress = "127.0.0.1:15001"
    #: total size of the request line and headers (431 past it).
    max_header_bytes: Size = Field(60 * 1024, ge=1024)
    #: number of request headers (431 past it).
    max_headers: int = Field(100, ge=1, le=10_000)
    #: request-target length (414 past it).
    max_uri_bytes: Size = Field(8 * 1024, ge=256)
    #: request body limit (413 past it); ``null`` streams bodies of any size.
    max_request_body: Size | None = None
    #: time allowed to receive a complete request head once it started (408 past it).
    header_timeout: PositiveDuration = 10.0
    #: an idle keep-alive connection is closed after this long.
    idle_timeout: PositiveDuration = 60.0
    #: app connections open at once; a new one past it is closed at once and counted
    #: (``sidecar_connections_refused_total``). ``null``: sized from the open-files limit
    #: (docs/operations.md, "Open files and connection caps").
    max_connections: int | None = Field(None, ge=1)


class GrpcFloodConfig(Model):
    """``grpc.flood_protection:``: how much work one app connection may cause the HTTP/2 front
    (``grpc.server: h2``) with cheap frames before it gets GOAWAY(ENHANCE_YOUR_CALM) and is
    closed (docs/grpc.md, "Flood protection"). Counts are per connection, per ``window``."""

    #: ``false``: no connection is closed for flooding (``frames_per_turn`` still applies).
    enabled: bool = True
    #: the counts below start again every ``window``.
    window: PositiveDuration = 10.0
    #: calls the app may reset (RST_STREAM) before the sidecar finished them, while younger than
    #: ``min_stream_lifetime``, in one window whatever their share of its calls...
    max_premature_resets: int = Field(200, ge=1)
    #: ...and past that, while they are at most this share of the calls it opened in the window.
    premature_reset_ratio: float = Field(0.5, ge=0.0, le=1.0)
    #: a call reset when older than this is a cancellation, never a flood.
    min_stream_lifetime: Duration = 1.0
    #: frames that start no call and carry no message (PING, SETTINGS, PRIORITY, WINDOW_UPDATE,
    #: RST_STREAM, empty DATA, unknown types, HEADERS that open nothing) per window, plus 4 for
    #: each call opened and each frame the sidecar sent (what an honest client answers with).
    max_control_frames: int = Field(1000, ge=1)
    #: frames of one connection handled per event-loop turn; the rest wait for the next turn
    #: (reading paused), so one connection cannot hold the loop that serves every port.
    frames_per_turn: int = Field(100, ge=1, le=100_000)
    #: calls of one connection started per event-loop turn; the others start in the next
    #: turns (a call the app resets before its turn costs no work).
    calls_per_turn: int = Field(16, ge=1, le=100_000)


class GrpcListenerConfig(Model):
    """``grpc:``: the app-facing gRPC egress listener (docs/grpc.md)."""

    #: ``false``: no gRPC port at all.
    enabled: bool = True
    #: loopback only, like ``http``.
    address: LoopbackAddress = "127.0.0.1:15002"
    #: largest message the app may send (RESOURCE_EXHAUSTED past it); a 4 MiB payload plus its
    #: framing fits the default.
    max_receive_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: largest message passed back to the app.
    max_send_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: request metadata size (names and values) an app may send.
    max_metadata_size: Size = Field(60 * 1024, ge=1024)
    #: streams (calls) in flight on one app connection (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS;
    #: a gRPC client queues calls past it). It also bounds the upstream calls one connection can
    #: start and reset before flood protection closes it: lower it where local clients are not
    #: trusted (docs/grpc.md, "Flood protection").
    max_concurrent_streams: int = Field(1024, ge=1, le=100_000)
    #: app connections open at once, like ``http.max_connections`` (the ``h2`` server only:
    #: grpcio's server does not show its connections).
    max_connections: int | None = Field(None, ge=1)
    #: what serves the port: ``h2`` (the sidecar's HTTP/2 front: routes by ``:authority``,
    #: about half the CPU per call) or ``grpcio`` (a grpc.aio server: takes compressed calls,
    #: cannot route by authority); docs/grpc.md.
    server: Literal["grpcio", "h2"] = "h2"
    #: what one app connection may make the ``h2`` server do with cheap frames (rapid reset,
    #: PING/SETTINGS floods...); grpcio's server has its own protections (docs/grpc.md).
    flood_protection: GrpcFloodConfig = GrpcFloodConfig()


#: ``shutdown.app_quiet_period`` when the file leaves it out (and ``drain_timeout`` is longer).
DEFAULT_APP_QUIET_PERIOD = 2.0


class ShutdownConfig(Model):
    """``shutdown:``: what SIGTERM does (docs/operations.md, "Signals and the lifecycle").

    Both keys are read when SIGTERM arrives, so a reload changes the next shutdown (they are not
    restart-only). ``app_quiet_period`` must be shorter than ``drain_timeout``: the grace bounds
    the whole shutdown, quiet wait included, and a quiet period as long as the grace would leave
    a busy app's last calls no time to finish. Left out of the file while ``drain_timeout`` is
    2 s or less, it is 0 (off), so a short grace keeps meaning "drain at once".
    """

    #: the whole shutdown's bound: the wait for the app to go quiet, then in-flight calls, then
    #: what is still running is cut (0: cut at once).
    drain_timeout: Duration = 20.0
    #: on SIGTERM the egress listeners (HTTP, gRPC) keep serving the app until it has had no
    #: call in flight, and started none, for this long (or the grace ends); then the drain runs.
    #: For the classic layout, where the app gets SIGTERM at the same moment and still calls out
    #: while it drains. 0: off, drain at once (a native sidecar needs none: Kubernetes stops the
    #: app first, and an app that is gone is quiet, so it costs this long at most).
    app_quiet_period: Duration = DEFAULT_APP_QUIET_PERIOD

    @model_validator(mode="before")
    @classmethod
    def _default_quiet_fits_the_grace(cls, data: Any) -> Any:
        if isinstance(data, dict) and "app_quiet_period" not in data:
            try:
                grace = parse_duration(data.get("drain_timeout", 20.0))
            except (PydanticCustomError, TypeError, ValueError):
                return data  # the field's own validation says what is wrong
            if grace <= DEFAULT_APP_QUIET_PERIOD:
                return {**data, "app_quiet_period": 0.0}
        return data

    @model_validator(mode="after")
    def _quiet_within_the_grace(self) -> ShutdownConfig:
        quiet, grace = self.app_quiet_period, self.drain_timeout
        if quiet and quiet >= grace:
            raise PydanticCustomError(
                "quiet_period",
                "app_quiet_period ({quiet}s) must be shorter than drain_timeout ({grace}s), "
                "which bounds the whole shutdown; 0 turns the wait for the app off",
                {"quiet": f"{quiet:g}", "grace": f"{grace:g}"},
            )
        return self


class AccessLogConfig(Model):
    """``telemetry.access_log:``: one JSON line per call on stdout."""

    enabled: bool = True
    #: fraction of successful calls logged (errors and sidecar decisions are always logged).
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    #: ``warning``: only calls the sidecar decided, 5xx and cut calls get a line.
    level: Literal["info", "warning"] = "info"


class TracingConfig(Model):
    """``telemetry.tracing:``: OpenTelemetry spans exported over OTLP (docs/observability.md).

    A key left unset takes the standard ``OTEL_*`` environment variable, then the OTel default.
    """

    #: ``false`` (or ``OTEL_SDK_DISABLED=true``): no tracing objects at all.
    enabled: bool = True
    #: OTLP transport; unset: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``_PROTOCOL``, else grpc.
    protocol: Literal["grpc", "http/protobuf"] | None = None
    #: collector address; unset: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``_ENDPOINT``, else
    #: ``http://localhost:4317`` (grpc) or ``http://localhost:4318/v1/traces`` (http/protobuf).
    endpoint: str | None = None
    #: parent-based ratio sampler's ratio for new traces (a call with a sampled parent is always
    #: sampled); unset: ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, else 1.0.
    sample_ratio: float | None = Field(None, ge=0.0, le=1.0)
    #: ``service.name``; unset: ``OTEL_SERVICE_NAME``, then ``OTEL_RESOURCE_ATTRIBUTES``, else
    #: ``sidecar``.
    service_name: str | None = None
    #: headers sent to the collector (values may be secret references); empty:
    #: ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``.
    headers: dict[ConfigurableHeaderName, HeaderValueOrSecret] = {}
    #: one export request's timeout (retries included); unset:
    #: ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT`` (ms), else 10 s.
    export_timeout: PositiveDuration | None = None
    #: spans kept waiting for export; past it new spans are dropped (and counted); unset:
    #: ``OTEL_BSP_MAX_QUEUE_SIZE``, else 2048.
    max_queue_size: int | None = Field(None, ge=1, le=1_000_000)
    #: spans per export request; unset: ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, else 512.
    max_export_batch_size: int | None = Field(None, ge=1, le=100_000)
    #: time between exports; unset: ``OTEL_BSP_SCHEDULE_DELAY`` (ms), else 5 s.
    schedule_delay: PositiveDuration | None = None


class TelemetryConfig(Model):
    """``telemetry:``: the sidecar's own log, the access log and tracing."""

    #: level of the sidecar's own JSON log on stderr.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: AccessLogConfig = AccessLogConfig()
    #: off when unset.
    tracing: TracingConfig | None = None


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

    _request_headers_once = field_validator("request_headers", mode="before")(_no_twice)


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

    _headers_once = field_validator("headers", mode="before")(_no_twice)


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

    #: the keys above that override the upstream's.
    OVERRIDES: ClassVar[tuple[str, ...]] = (
        "timeout",
        "retry",
        "rate_limit",
        "global_rate_limit",
        "verify_hmac",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not ROUTE_NAME.match(v):
            raise PydanticCustomError(
                "route_name",
                "a route name is letters, digits, '.', '_' or '-', got {got}",
                {"got": show(v)},
            )
        return v

    @field_validator("prefix_rewrite")
    @classmethod
    def _rewrite(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise PydanticCustomError(
                "prefix", 'a prefix rewrite starts with "/", got {got}', {"got": show(v)}
            )
        return v


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
        if v is not None and not ROUTE_NAME.match(v):
            raise PydanticCustomError(
                "route_name",
                "a route name is letters, digits, '.', '_' or '-', got {got}",
                {"got": show(v)},
            )
        return v


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


class PluginsConfig(BaseModel):
    """``plugins:``: ``disabled`` plus one section per plugin that declares config.

    The sections stay raw here; the loader validates each with the model its plugin declares.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    #: plugin names (entry-point or module names) never loaded.
    disabled: list[str] = []

    def section(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)


class SidecarConfig(Model):
    """The whole file. A section left empty (``upstreams:`` with nothing under it) is defaults."""

    admin: AdminConfig = AdminConfig()
    http: HttpListenerConfig = HttpListenerConfig()
    grpc: GrpcListenerConfig = GrpcListenerConfig()
    #: the mTLS listener in front of the app; none when unset.
    inbound: InboundConfig | None = None
    telemetry: TelemetryConfig = TelemetryConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    #: where global rate limits are decided, by name (``upstreams.X.global_rate_limit.backend``).
    ratelimit_backends: dict[str, RateLimitBackendConfig] = {}
    upstreams: dict[UpstreamName, UpstreamConfig] = {}
    routes: list[RouteConfig] = []
    plugins: PluginsConfig = PluginsConfig()

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None and k in cls.model_fields)}
        return data

    @model_validator(mode="after")
    def _services_once(self) -> SidecarConfig:
        owner: dict[str, str] = {}
        for name, up in self.upstreams.items():
            for service in up.services:
                prior = owner.setdefault(service, name)
                if prior != name:
                    raise PydanticCustomError(
                        "grpc_service",
                        "gRPC service {service} is routed to two upstreams: {a} and {b}",
                        {"service": service, "a": prior, "b": name},
                    )
        return self

"""Prometheus metric families, one registry per running sidecar (tests run several).

Label sets are bounded: listener, upstream and route names come from the config (a call no route
took has ``upstream=""`` and ``route=""``), ``code`` is the 3-digit status the app got, ``reason``
is a :mod:`sidecar.errors` code, ``outcome`` one too or ``response``/``cancelled``, ``state`` is
``idle``/``busy``. Nothing from a request (path, header, client address, trace id) ever becomes a
label. Hot-path users resolve labelled children once and keep them (``labels()`` is a dict
lookup), see :class:`RouteMetrics` and :class:`UpstreamAttempts`; the families every call updates
are lock-free (:mod:`sidecar.telemetry.families`); pool sizes, breaker states, upstream health
and the process families are read at scrape time, never updated per call.

Not here: which filter records what (:mod:`sidecar.filters.metrics`), serving ``/metrics``
(:mod:`sidecar.admin_routes`). ``docs/operations.md`` lists every family.
"""

from __future__ import annotations

__all__ = ["ATTEMPT_CANCELLED", "ATTEMPT_RESPONSE", "Metrics", "RouteMetrics", "UpstreamAttempts"]

import asyncio
import platform
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..errors import SidecarError
from ..loops import loop_name
from ..version import installed_version
from . import access_writer
from .families import (
    CounterChild,
    GaugeChild,
    HistogramChild,
    LoopCounter,
    LoopGauge,
    LoopHistogram,
)

#: Latency buckets (seconds) fit for a local proxy: sub-millisecond to the 15 s default timeout.
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
)


#: ``sidecar_upstream_attempts_total{outcome}`` of an attempt that got a response (any status;
#: for gRPC, any ``grpc-status``: the call was answered).
ATTEMPT_RESPONSE = "response"
#: ``outcome`` of an attempt given up before an answer: the call's deadline or a per-try
#: timeout passed (they cancel the work below them), or the app went away.
ATTEMPT_CANCELLED = "cancelled"

#: sidecar decisions kept for the dashboard's "recent errors".
RECENT_ERRORS = 50


class _PoolCollector:
    """Reads connection-pool sizes at scrape time, so the data path never updates a gauge."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Iterable[tuple[str, str, int]]]] = []

    def collect(self) -> Iterable[Any]:
        fam = GaugeMetricFamily(
            "sidecar_upstream_connections",
            "Open connections to each upstream by state (idle, busy).",
            labels=["upstream", "state"],
        )
        for source in self.sources:
            for upstream, state, count in source():
                fam.add_metric([upstream, state], count)
        yield fam


class _AccessLogCollector:
    """Access-log lines the process lost (stdout did not keep up), read at scrape time."""

    def collect(self) -> Iterable[Any]:
        yield CounterMetricFamily(
            "sidecar_access_log_dropped",
            "Access-log lines dropped because stdout did not keep up (or failed).",
            value=access_writer.dropped_total(),
        )


class Metrics:
    """All metric families of one sidecar."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # updated on every call: lock-free families (sidecar.telemetry.families), same exposition
        self.requests = LoopCounter(
            "sidecar_requests",
            "Calls answered, by listener, upstream, route and status code.",
            ["listener", "upstream", "route", "code"],
        )
        self.duration = LoopHistogram(
            "sidecar_request_duration_seconds",
            "Time from the request head to the response head, by listener, upstream and route.",
            ["listener", "upstream", "route"],
            buckets=DURATION_BUCKETS,
        )
        self.in_flight = LoopGauge(
            "sidecar_requests_in_flight",
            "Calls in progress, by listener and upstream.",
            ["listener", "upstream"],
        )
        self.upstream_attempts = LoopCounter(
            "sidecar_upstream_attempts",
            "Requests sent to upstreams, by upstream and outcome.",
            ["upstream", "outcome"],
        )
        for family in (self.requests, self.duration, self.in_flight, self.upstream_attempts):
            r.register(family)
        self.connections_opened = Counter(
            "sidecar_upstream_connections_opened",
            "Upstream connections opened, by upstream.",
            ["upstream"],
            registry=r,
        )
        self.errors = LoopCounter(
            "sidecar_errors",
            "Synthetic error responses, by listener, upstream and reason.",
            ["listener", "upstream", "reason"],
        )
        r.register(self.errors)
        #: the latest sidecar decisions (synthetic error answers), newest last, for the
        #: dashboard: appended by the metrics filter on its error path only, bounded.
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=RECENT_ERRORS)
        self.config_reloads = Counter(
            "sidecar_config_reloads",
            "Config reloads, by result (ok, refused).",
            ["result"],
            registry=r,
        )
        self.downstream_connections = Gauge(
            "sidecar_downstream_connections",
            "Open app connections, by listener.",
            ["listener"],
            registry=r,
        )
        self.connections_refused = Counter(
            "sidecar_connections_refused",
            "App connections closed as soon as they were accepted, by listener and reason "
            "(limit: the listener's max_connections).",
            ["listener", "reason"],
            registry=r,
        )
        self.open_files_exhausted = Counter(
            "sidecar_open_files_exhausted",
            "Times a socket could not be opened for want of file handles (or socket memory), "
            "by where it happened (accept, upstream connect).",
            ["where"],
            registry=r,
        )
        self.pools = _PoolCollector()
        r.register(self.pools)
        r.register(_AccessLogCollector())
        build = Gauge(
            "sidecar_build_info",
            "Always 1; the labels say which sidecar version runs on which Python and event loop.",
            ["version", "python", "loop"],
            registry=r,
        )
        build.labels(installed_version(), platform.python_version(), loop_name()).set(1)
        # process_* (CPU, memory, fds), python_info and python_gc_*: read at scrape time, and
        # per registry (none of them is in prometheus_client's global registry's way)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        # circuit breaker and load shedding (their gauges are read at scrape time from the live
        # policy objects: sidecar.resilience.views)
        self.circuit_transitions = Counter(
            "sidecar_circuit_transitions",
            "Circuit breaker transitions, by upstream and the state entered.",
            ["upstream", "to"],
            registry=r,
        )
        self.overloaded = Counter(
            "sidecar_overloaded",
            "Calls shed by the upstream's concurrency limit, by reason (limit, max_wait).",
            ["upstream", "reason"],
            registry=r,
        )
        # retries (sidecar.filters.retry): condition is a name from the route's retry.on,
        # reason one of the retry filter's SKIP_REASONS
        self.retries = Counter(
            "sidecar_retries",
            "Retries sent, by upstream, route and the condition that caused them.",
            ["upstream", "route", "condition"],
            registry=r,
        )
        self.retries_skipped = Counter(
            "sidecar_retries_skipped",
            "Retryable failures not retried, by upstream, route and reason.",
            ["upstream", "route", "reason"],
            registry=r,
        )
        # fault injection (sidecar.filters.fault): kind is delay or abort; reason is why a fault
        # that was due was not injected (max_active)
        self.faults_injected = Counter(
            "sidecar_faults_injected",
            "Faults injected, by upstream, route and kind (delay, abort).",
            ["upstream", "route", "kind"],
            registry=r,
        )
        self.faults_skipped = Counter(
            "sidecar_faults_skipped",
            "Faults due but not injected (the call went through unfaulted), by reason.",
            ["reason"],
            registry=r,
        )
        # rate limits (sidecar.filters.rate_limit, sidecar.filters.global_rate_limit,
        # sidecar.ratelimit.guard): mode is what happened to the call (reject: 429, wait:
        # delayed then sent, shadow: would have been limited); backend is a ratelimit_backends name
        self.rate_limited = Counter(
            "sidecar_rate_limited",
            "Calls a rate limit rejected, delayed or (shadow) would have limited, by upstream, "
            "route, scope (local, global) and mode (reject, wait, shadow).",
            ["upstream", "route", "scope", "mode"],
            registry=r,
        )
        self.ratelimit_backend_errors = Counter(
            "sidecar_ratelimit_backend_errors",
            "Calls a rate-limit backend could not decide in time (error, timeout, or during an "
            "outage), decided by its on_error rule instead, by backend.",
            ["backend"],
            registry=r,
        )
        self.ratelimit_backend_duration = Histogram(
            "sidecar_ratelimit_backend_duration_seconds",
            "Round-trip time of one rate-limit backend decision, by backend.",
            ["backend"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=r,
        )
        # credentials (sidecar.auth): result is ok, rejected (the IdP answered an error),
        # unreachable (no answer) or invalid (an answer that is no token); reason one of
        # sidecar.auth.verify.REASONS. The token expiry gauge is read at scrape time.
        self.tokens_refreshed = Counter(
            "sidecar_tokens_refreshed",
            "OAuth2 token fetches, by upstream and result (ok, rejected, unreachable, invalid).",
            ["upstream", "result"],
            registry=r,
        )
        self.credentials_unavailable = Counter(
            "sidecar_credentials_unavailable",
            "Calls answered 503 credentials_unavailable (no valid token, the IdP failing).",
            ["upstream"],
            registry=r,
        )
        self.signatures_rejected = Counter(
            "sidecar_signatures_rejected",
            "Calls verify_hmac refused, by upstream, route and reason.",
            ["upstream", "route", "reason"],
            registry=r,
        )

        # mTLS (sidecar.listeners.inbound): reason is one of a bounded set (no_certificate,
        # untrusted, expired, plain_http, timeout...); the certificate expiry gauge is read at
        # scrape time (sidecar.tls.expiry)
        self.tls_handshake_failures = Counter(
            "sidecar_tls_handshake_failures",
            "TLS handshakes the inbound listener refused or lost, by listener and reason.",
            ["listener", "reason"],
            registry=r,
        )
        # the gRPC port's HTTP/2 front (sidecar.grpc.h2_abuse): reason is a bounded set
        # (rapid_reset, ping, settings, window_update, priority, empty_data, rst_stream, headers,
        # goaway, push_promise, unknown, header_block); the peer is logged, never a label
        self.http2_flood_closed = Counter(
            "sidecar_http2_flood_closed",
            "App connections closed with GOAWAY(ENHANCE_YOUR_CALM) for flooding the HTTP/2 "
            "front with cheap frames, by listener and reason.",
            ["listener", "reason"],
            registry=r,
        )

    def route(self, listener: str, upstream: str, route: str) -> RouteMetrics:
        return RouteMetrics(self, listener, upstream, route)

    def attempts(self, upstream: str) -> UpstreamAttempts:
        """``sidecar_upstream_attempts_total`` of one upstream, for its adapter (resolve it
        when building the upstream's handler, not per call)."""
        return UpstreamAttempts(self.upstream_attempts, upstream)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RouteMetrics:
    """Pre-resolved children for one route: the data path never calls ``labels()`` twice."""

    __slots__ = ("_codes", "_metrics", "duration", "in_flight", "labels")

    def __init__(self, metrics: Metrics, listener: str, upstream: str, route: str) -> None:
        self._metrics = metrics
        self.labels = (listener, upstream, route)
        self.duration: HistogramChild = metrics.duration.labels(listener, upstream, route)
        self.in_flight: GaugeChild = metrics.in_flight.labels(listener, upstream)
        self._codes: dict[int, CounterChild] = {}

    def count(self, status: int) -> None:
        child = self._codes.get(status)
        if child is None:
            child = self.requests(status)
        child.value += 1

    def requests(self, status: int) -> CounterChild:
        """The ``sidecar_requests_total`` child of ``status`` (found once per status; the
        compiled metrics filter keeps them and bumps the child itself)."""
        child = self._codes.get(status)
        if child is None:
            child = self._codes[status] = self._metrics.requests.labels(*self.labels, str(status))
        return child


class UpstreamAttempts:
    """What an adapter counts: every request it sends (or tries to) to one upstream, once, with
    its outcome. Call :attr:`response` when an answer came back (whatever its status),
    :meth:`failed` with the exception that ended the attempt otherwise (connect, reset, timeout,
    protocol error, pool full, cancelled). A resend (keep-alive race) is a second attempt."""

    __slots__ = ("_family", "_outcomes", "_upstream", "response", "responses")

    def __init__(self, family: LoopCounter, upstream: str) -> None:
        self._family = family
        self._upstream = upstream
        #: the outcome children used so far; bounded by the set of SidecarError codes
        self._outcomes: dict[str, CounterChild] = {}
        #: the child counting attempts that got a response: compiled code adds to its value
        #: (a plain number on the loop thread), with no call
        self.responses = self._child(ATTEMPT_RESPONSE)
        #: count one attempt that got a response (a bound method: nothing looked up per call).
        self.response: Callable[[], None] = self.responses.inc

    def _child(self, outcome: str) -> CounterChild:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self._family.labels(self._upstream, outcome)
        return child

    def failed(self, error: BaseException) -> None:
        """Count one attempt ``error`` ended: a :class:`SidecarError` by its code,
        cancellation as ``cancelled``, anything else as ``internal``."""
        if isinstance(error, SidecarError):
            outcome = error.code
        elif isinstance(error, asyncio.CancelledError):
            outcome = ATTEMPT_CANCELLED
        else:
            outcome = "internal"
        self._child(outcome).value += 1

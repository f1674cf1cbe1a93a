"""Which build of the sidecar is running, and the one list of modules a compiled build compiles.

A wheel built by ``pip wheel .`` compiles the modules of :data:`COMPILED_MODULES` with mypyc
(``setup.py`` reads the list from this file without importing the package); every other module,
and every module of a pure-Python install (``SIDECAR_PURE=1``, an editable install, no C compiler),
runs as Python source. Both behave the same: docs/compiled-build.md says what that takes.

This module is never compiled itself, imports only the standard library (``setup.py`` runs it
before any dependency is installed) and is not the build: it only names the modules and tells,
at run time, which way they were installed.
"""

from __future__ import annotations

__all__ = ["COMPILED_MODULES", "COMPILED", "PURE", "build_kind"]

import functools
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import find_spec

COMPILED = "compiled (mypyc)"
PURE = "pure Python"

#: Every module a compiled build compiles, and why it is on the list: code that runs on each
#: call (or each read and write of a connection). A module here must keep its classes free of
#: interpreted subclasses and of monkeypatching (docs/compiled-build.md, "Rules").
COMPILED_MODULES: dict[str, str] = {
    # kernel: the call's nouns, built and read by every layer on every call
    "sidecar.exchange": "Exchange, Headers, Response: built, read and copied on every call",
    "sidecar.chain": "a route's composed handler: one call per filter per request",
    "sidecar.observing": "metrics, access log and rescue fused: the outer frame of every call",
    "sidecar.http1": "HTTP/1.1 framing and status lines written for every response",
    "sidecar.waiter": "the two waits of every HTTP/1.1 call (next request, upstream answer)",
    "sidecar.flow_control": "pause/resume on every transport write of both connections",
    "sidecar.outcomes": "each response classified for breaker, retry and metrics",
    "sidecar.answers": "refusals (404, 413, 503...) answered on the hot error path",
    # fronts: the app-facing HTTP/1.1 listener and routing
    "sidecar.routing": "path normalisation and the route lookup of every request",
    "sidecar.listeners.http": "the HTTP/1.1 port: connection accounting per accept",
    "sidecar.listeners.http_connection": "the per-connection worker answering each request",
    "sidecar.listeners.http_request": "httptools callbacks: request head and body parsing",
    "sidecar.listeners.http_response": "response head serialisation and body writing",
    "sidecar.listeners.http_body": "streamed request bodies with back-pressure",
    "sidecar.listeners.http_state": "connection states checked on every parser callback",
    "sidecar.listeners.inbound": "inbound mTLS connections subclass HttpConnection",
    # upstream side: the adapter, its pool and connections
    "sidecar.adapters.http_adapter": "the HTTP adapter: the terminal handler of HTTP routes",
    "sidecar.upstream.connection": "upstream request writing and httptools response parsing",
    "sidecar.upstream.pool": "a keep-alive connection taken and returned per call",
    "sidecar.upstream.body": "streamed response bodies with back-pressure",
    # filters on every route (filters/__init__.py places them)
    "sidecar.filters.rescue": "outermost filter of every route",
    "sidecar.filters.access_log": "one access-log record per call",
    "sidecar.filters.metrics": "counters and histograms observed per call",
    "sidecar.filters.concurrency": "the concurrency limit of every route",
    "sidecar.filters.timeout": "the deadline of every call",
    "sidecar.filters.retry": "retry decision on every response",
    "sidecar.filters.circuit_breaker": "breaker admission and outcome per call",
    "sidecar.filters.request_headers": "static request headers set per call where configured",
    # the optional filters of the full chain (a credential and a local rate limit): on every
    # call of each route that configures them
    "sidecar.auth.filter": "the upstream credential put on every attempt",
    "sidecar.filters.rate_limit": "the local rate limit's decision per call",
    "sidecar.ratelimit.bucket": "the token bucket a local rate limit takes from per call",
    # resilience primitives those filters call per request
    "sidecar.resilience.breaker": "the circuit breaker's window, updated per call",
    "sidecar.resilience.concurrency": "the concurrency limiter, acquired per call",
    "sidecar.resilience.deadlines": "the deadline wheel a timeout registers with per call",
    "sidecar.resilience.per_try": "per-try timeouts of the retry filter",
    "sidecar.resilience.replay": "replayable request bodies for retries",
    "sidecar.resilience.retry_budget": "the retry budget, counted per call",
    "sidecar.resilience.backoff": "retry back-off and Retry-After parsing",
    "sidecar.resilience.idempotency": "whether a method may be repeated, asked per retry",
    # the HTTP/2 state machine of the gRPC port (its exceptions, hpack_errors and errors, stay
    # Python: callers may subclass them): every frame of every gRPC call passes through these
    "sidecar.http2.frames": "HTTP/2 frame headers and payloads read and written per frame",
    "sidecar.http2.events": "one event object per frame received",
    "sidecar.http2.streams": "a stream's state and windows, per frame",
    "sidecar.http2.state": "settings, stream table, windows and output of a connection",
    "sidecar.http2.header_blocks": "HEADERS/CONTINUATION reassembled and checked per call",
    "sidecar.http2.inbound": "received bytes cut into frames and dispatched",
    "sidecar.http2.connection": "the sending API: headers, data, resets, window updates",
    "sidecar.http2.header_rules": "RFC 9113 header checks on each request block",
    "sidecar.http2.hpack": "HPACK entry points, per header block",
    "sidecar.http2.hpack_wire": "HPACK integers and strings, per header field",
    "sidecar.http2.hpack_decoder": "each received header block decoded",
    "sidecar.http2.hpack_encoder": "each header block sent encoded",
    "sidecar.http2.hpack_static": "the static table looked up per header field",
    "sidecar.http2.huffman": "Huffman strings decoded and encoded per header field",
    # telemetry written per call (telemetry.metrics is not: built once, and tests subclass its
    # Metrics and RouteMetrics to inject faults, which a compiled class forbids)
    "sidecar.telemetry.families": "the lock-free counters and histograms updated per call",
    "sidecar.telemetry.access_writer": "access-log lines formatted and queued per call",
}


def build_kind() -> str:
    """:data:`COMPILED` when every listed module is installed compiled, :data:`PURE` when none
    is, else ``mixed (n of m compiled)`` (a half-built tree: rebuild it). Found without
    importing the modules, so ``sidecar --version`` stays cheap."""
    return _build_kind()


@functools.cache
def _build_kind() -> str:
    compiled = sum(_is_compiled(name) for name in COMPILED_MODULES)
    if compiled == len(COMPILED_MODULES):
        return COMPILED
    if compiled == 0:
        return PURE
    return f"mixed ({compiled} of {len(COMPILED_MODULES)} compiled)"


def _is_compiled(module: str) -> bool:
    spec = find_spec(module)
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(EXTENSION_SUFFIXES))

"""Fuzz harness for the HTTP/1.1 egress listener: bytes from an app into one
:class:`~sidecar.listeners.http_connection.HttpConnection`, through a memory transport, with a
stub route handler standing in for every upstream.

Checked for every input: nothing but the listener's own answers comes out of it (no exception
escapes ``data_received`` or the connection's worker, nothing is logged as an unexpected error);
the input is handled within its bound and the connection's buffers stay under their caps while
the harness keeps feeding (as a socket would, only while reading is not paused); every request
the stub receives passed the listener's checks (one valid ``Host``, no hop-by-hop header or one
that ``Connection`` names, a normalised path, a body within the limit) and is unambiguous when
written upstream; no request is dispatched once the connection refused, and no response follows
a refusal; after the app leaves, the connection's worker is gone. Not here: the targets' registry
(:mod:`tests.fuzz.targets`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httptools

from sidecar.config.models import HttpListenerConfig
from sidecar.errors import SidecarError
from sidecar.exchange import Exchange, Headers, Response
from sidecar.http1 import HOP_BY_HOP, valid_host
from sidecar.listeners.http import HttpListener
from sidecar.listeners.http_body import BODY_HIGH_WATER, RequestBody
from sidecar.listeners.http_connection import COLLECT_LIMIT, MAX_PIPELINED, HttpConnection
from sidecar.routing import Route, RouteTable, normalize_path
from sidecar.telemetry.metrics import Metrics

from .common import MemoryTransport, PropertyBroken, chunks, no_error_logged, run_bounded, settle
from .http_responses import Read, split_responses

#: small limits, so short inputs reach them
LIMITS = {"max_header_bytes": 2048, "max_headers": 16, "max_uri_bytes": 512}
BODY_LIMIT = 4096
#: the listener answers these itself; the connection closes after them
REFUSALS = frozenset(
    {"bad_request", "uri_too_long", "headers_too_large", "body_too_large", "request_timeout"}
)
_METRICS: Metrics | None = None


def _metrics() -> Metrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = Metrics()  # one registry for all inputs: its label sets are bounded
    return _METRICS


class Upstream:
    """The route handler: records what reached it and checks it is a request worth sending."""

    def __init__(self, cfg: HttpListenerConfig) -> None:
        self.cfg = cfg
        self.calls: list[Exchange] = []
        self.body_bytes = 0
        self.problems: list[str] = []

    async def __call__(self, ex: Exchange) -> Response:
        self.calls.append(ex)
        self.check(ex)
        body = ex.body
        if isinstance(body, RequestBody):
            async for part in body:  # raises the listener's error for a broken body
                self.body_bytes += len(part)
        else:
            self.body_bytes += len(body)
        if ex.method == "HEAD" or len(ex.path) % 2:
            return Response(200, Headers([("x-fuzz", "handled")]), b"")
        return Response(200, Headers([("x-fuzz", "handled")]), _stream(), length=None)

    def check(self, ex: Exchange) -> None:
        def bad(why: str) -> None:
            self.problems.append(f"{why}: {ex.method} {ex.path!r} {ex.headers.items()!r}")

        if ex.method == "CONNECT" or ex.http_version not in ("1.0", "1.1"):
            bad("a request the listener refuses reached the upstream")
        try:
            if normalize_path(ex.path) != ex.path:
                bad("the forwarded path is not normalised")
        except SidecarError:
            bad("a path normalisation refuses reached the upstream")
        names = [k for k, _ in ex.headers]
        if any(k in HOP_BY_HOP for k in names):
            bad("a hop-by-hop header reached the upstream")
        if len(names) > self.cfg.max_headers:
            bad("more headers than the limit reached the upstream")
        hosts = [v for k, v in ex.headers if k == "host"]
        if len(hosts) > 1 or (hosts and not valid_host(hosts[0])):
            bad("an invalid Host reached the upstream")
        if ex.http_version == "1.1" and not hosts and ex.host is None:
            bad("an HTTP/1.1 request without Host reached the upstream")
        limit = self.cfg.max_request_body
        if limit is not None and ex.body_length is not None and ex.body_length > limit:
            bad("a body over the limit reached the upstream")
        _reparse(ex, bad)


async def _stream() -> AsyncIterator[bytes]:
    yield b"o"
    yield b"k"


def _reparse(ex: Exchange, bad: Callable[[str], None]) -> None:
    """What the HTTP adapter would write upstream must parse back to the same one request."""
    target = f"{ex.path}?{ex.query}" if ex.query else ex.path
    fields = [("host", "up"), *((k, v) for k, v in ex.headers if k != "host")]
    fields.append(("content-length", "0"))
    head = f"{ex.method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    seen: list[tuple[str, str]] = []
    done: list[bytes] = []

    class Sink:
        def on_url(self, url: bytes) -> None:
            done.append(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            seen.append((name.decode("latin-1"), value.decode("latin-1")))

    try:
        httptools.HttpRequestParser(Sink()).feed_data((head + "\r\n").encode("latin-1"))
    except (httptools.HttpParserError, UnicodeEncodeError) as e:
        bad(f"the request as forwarded does not parse ({e})")
        return
    if seen != fields or done != [target.encode("latin-1")]:
        bad("the request as forwarded parses as another request")


@dataclass
class ListenerRun:
    """What one connection did: the bytes it wrote, and the requests the upstream stub got."""

    out: bytes = b""
    forwarded: list[Exchange] = field(default_factory=list)
    body_bytes: int = 0
    responses: list[Read] = field(default_factory=list)


class _DispatchRecorder(deque[Exchange | Response]):
    """The connection's queue, noting each request dispatched to it (and any after a refusal):
    the harness sees dispatch without patching the method, which a compiled connection would
    not call (it calls its own methods directly)."""

    def __init__(self, conn: HttpConnection) -> None:
        super().__init__()
        self.conn = conn
        self.methods: list[str] = []
        self.after_refusal: list[str] = []

    def append(self, item: Exchange | Response) -> None:
        if isinstance(item, Exchange):
            if self.conn.refused:
                self.after_refusal.append(f"{item.method} {item.path!r}")
            self.methods.append(item.method)
        super().append(item)


def listener_target(data: bytes) -> None:
    """One app connection sending ``data`` (its first byte picks the cuts and the limits)."""
    if data:
        run_listener(data[1:], data[0])


def run_listener(payload: bytes, control: int = 0) -> ListenerRun:
    """Drive one connection with ``payload``; raises :class:`PropertyBroken` on a broken
    property. ``control``: bits 0-5 pick the cuts, 0x40 no half-close, 0x80 no body limit."""
    run = ListenerRun()
    with no_error_logged("sidecar.listener"):
        run_bounded(lambda: _drive(payload, control, run))
    return run


async def _drive(payload: bytes, control: int, run: ListenerRun) -> None:
    cfg = HttpListenerConfig(
        **LIMITS,
        max_request_body=None if control & 0x80 else BODY_LIMIT,
        header_timeout=1.0,
        idle_timeout=1.0,
    )
    placeholder = RouteTable({})
    listener = HttpListener(cfg, placeholder, _metrics(), name="fuzz")
    conn = HttpConnection(listener)
    transport = MemoryTransport(conn, half_close=not control & 0x40)
    upstream = Upstream(cfg)
    listener.routes = RouteTable({"up": Route("up", "up", upstream)})
    queue = conn.queue = _DispatchRecorder(conn)
    dispatched_after_refusal = queue.after_refusal
    methods = queue.methods
    conn.connection_made(transport)
    for piece in chunks(payload, control):
        # a paused transport leaves the bytes in the kernel, not in the sidecar: wait for the
        # handler to drain the body or the queue, as the app's socket would
        await settle(lambda: transport.reading or transport.closed)
        if transport.closed or not transport.reading:
            break
        parsed = not conn.input_closed  # else discarded: what it holds is from earlier reads
        conn.data_received(piece)
        if parsed:
            _check_caps(conn, len(piece))
        await asyncio.sleep(0)
    await settle(lambda: transport.closed or not conn.queue)
    # the app sends nothing more: the header timeout answers a head left half-sent
    conn.timed_out(listener.now + cfg.header_timeout + 0.5)
    await settle(lambda: transport.closed)
    if not transport.closed:
        conn.eof_received()  # the app leaves; asyncio closes a transport whose eof says None
        transport.close()
    # the connection lost (asyncio tells it a turn after the close), its worker ended
    await settle(lambda: transport.lost and (conn.worker is None or conn.worker.done()))
    if conn.worker is not None:
        if not conn.worker.done():
            raise PropertyBroken("the connection's worker outlived the connection")
        if not conn.worker.cancelled() and conn.worker.exception() is not None:
            raise PropertyBroken(f"the worker failed: {conn.worker.exception()!r}")
    if listener.connections:
        raise PropertyBroken("the listener still counts a closed connection")
    if upstream.problems:
        raise PropertyBroken(upstream.problems[0])
    if dispatched_after_refusal:
        raise PropertyBroken(f"dispatched after a refusal: {dispatched_after_refusal[0]}")
    run.out = bytes(transport.out)
    run.forwarded = upstream.calls
    run.body_bytes = upstream.body_bytes
    run.responses = _check_output(run.out, methods)


def _check_caps(conn: HttpConnection, read: int) -> None:
    limits = conn.listener.cfg
    if len(conn.url) > limits.max_uri_bytes + read:
        raise PropertyBroken(f"request target buffered past its cap: {len(conn.url)}")
    if conn.head_pending > limits.max_header_bytes + read:
        raise PropertyBroken(f"request head buffered past its cap: {conn.head_pending}")
    if len(conn.hdrs) > limits.max_headers:
        raise PropertyBroken(f"{len(conn.hdrs)} headers kept, over the cap")
    if conn.parts is not None and conn.parts_size > COLLECT_LIMIT + read:
        raise PropertyBroken(f"{conn.parts_size} body bytes collected, over the cap")
    if conn.stream is not None and conn.stream.size > BODY_HIGH_WATER + read:
        raise PropertyBroken(f"{conn.stream.size} body bytes buffered, over the high water")
    if len(conn.queue) > MAX_PIPELINED + 1 + read // 16:
        raise PropertyBroken(f"{len(conn.queue)} requests queued")


def _check_output(out: bytes, methods: list[str]) -> list[Read]:
    responses = split_responses(out, methods)
    for i, (status, code, _) in enumerate(responses):
        if code in REFUSALS and i != len(responses) - 1:
            raise PropertyBroken(f"a response followed a refusal: {status} {code}")
        if not 200 <= status <= 599:
            raise PropertyBroken(f"a final status out of range: {status}")
    return responses

"""The app-facing HTTP/1.1 listener: asyncio Protocol + httptools (llhttp), the hot path.

One :class:`HttpConnection` per app connection parses requests with llhttp in strict mode,
enforces the limits (431/414/413), builds an :class:`~sidecar.exchange.Exchange`, routes it and
writes the response. Requests on one connection are answered in order (pipelining) by one worker
task that lives as long as the connection, so a call costs no task creation.

A request whose whole body arrives with its head (the common case) is dispatched with a ``bytes``
body; otherwise the body streams through :class:`RequestBody`, which pauses reading from the app
while too much is buffered. ``Expect: 100-continue`` is answered by the sidecar itself when the
body is first read, so an early error (404, 413, 429) never makes the app send its body.

Not here: routing decisions (:mod:`sidecar.routing`), filters, or anything upstream-specific.
"""

from __future__ import annotations

__all__ = ["HttpListener"]

import asyncio
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

import httptools

from ..errors import (
    BadRequest,
    BodyTooLarge,
    HeadersTooLarge,
    RequestTimeout,
    SidecarError,
    UriTooLong,
)
from ..exchange import Exchange, Headers, Response
from ..filters.rescue import error_response
from ..http1 import HOP_BY_HOP, STATUS_LINES, hop_by_hop_names

if TYPE_CHECKING:
    from ..config.models import HttpListenerConfig
    from ..routing import RouteTable
    from ..telemetry.metrics import Metrics

log = logging.getLogger("sidecar.listener")

#: Request-body bytes buffered before reading from the app pauses (and resumes below LOW).
BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024
#: A body smaller than this that arrives with its head is collected and sent in one write.
COLLECT_LIMIT = 64 * 1024
#: Requests queued behind the one in progress on a pipelining connection before reading pauses.
MAX_PIPELINED = 16
#: On drain, idle keep-alive connections are closed after this quiet period (see stop_accepting).
DRAIN_IDLE_QUIET = 0.25
#: After the grace, cancelled calls get this long to unwind before the sidecar closes pools.
DRAIN_UNWIND = 1.0

_IDLE, _HEAD, _BUSY = 0, 1, 2
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY_STATUS = frozenset({204, 304})


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the reason is in ``conn.error``."""


class RequestBody:
    """A request body streaming from the app, with back-pressure. An ``AsyncIterator[bytes]``."""

    __slots__ = ("_conn", "_continue", "_error", "_waiter", "chunks", "eof", "size")

    def __init__(self, conn: HttpConnection, parts: list[bytes], expect_continue: bool) -> None:
        self._conn = conn
        self.chunks: deque[bytes] = deque(parts)
        self.size = sum(len(p) for p in parts)
        self.eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._continue = expect_continue

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER:
            self._conn.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._continue:
            self._continue = False
            self._conn.send_continue()
        while not self.chunks:
            if self._error is not None:
                raise self._error
            if self.eof:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.size < BODY_LOW_WATER:
            self._conn.resume_reading()
        return data


class HttpConnection(asyncio.Protocol):
    """One app connection."""

    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener
        self.cfg = listener.cfg
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.client_ip = ""
        #: dispatched requests in order; a ``Response`` is a refusal owed after them.
        self.queue: deque[Exchange | Response] = deque()
        #: no more requests are read (malformed input, or ``Connection: close`` seen).
        self.input_closed = False
        self.worker: asyncio.Task[None] | None = None
        self.next_ready: asyncio.Future[None] | None = None
        self.state = _IDLE
        self.since = 0.0
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.error: SidecarError | None = None
        # the request being parsed
        self.url = b""
        self.hdrs: list[tuple[str, str]] = []
        self.hdr_bytes = 0
        self.cur: Exchange | None = None
        self.parts: list[bytes] | None = None
        self.parts_size = 0
        self.stream: RequestBody | None = None
        self.body_received = 0
        self.expect_continue = False
        self.in_head = False
        #: set while a dispatched request's body is still arriving from the app.
        self.body_incomplete: Exchange | None = None

    # --- connection events -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client_ip = str(peer[0])
            self.client = f"{peer[0]}:{peer[1]}"
        self.since = self.listener.now
        self.listener.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.listener.connection_closed(self)
        if self.stream is not None and not self.stream.eof:
            self.stream.fail(asyncio.CancelledError())
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        w = self.drain_waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionResetError("app connection closed"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        w = self.drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closed or self.input_closed:
            return
        if self.state == _IDLE:
            self.state = _HEAD
            self.since = self.listener.now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.refuse(BadRequest("protocol upgrades (CONNECT, Upgrade) are not supported"))
            return
        except _Refused:
            assert self.error is not None
            self.refuse(self.error)
            return
        except httptools.HttpParserCallbackError as e:
            err = self.error or (e.__context__ if isinstance(e.__context__, SidecarError) else None)
            self.refuse(err or BadRequest("malformed request"))
            return
        except httptools.HttpParserError as e:
            self.refuse(BadRequest(f"malformed request: {e}"))
            return
        # The head arrived but its body is still coming: dispatch now with a streaming body.
        cur = self.cur
        if cur is not None and self.parts is not None:
            self.start_stream(cur)

    # --- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.hdrs = []
        self.hdr_bytes = 0
        self.expect_continue = False
        self.in_head = True
        if self.state != _BUSY:
            self.state = _HEAD
            self.since = self.listener.now

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.cfg.max_uri_bytes:
            self.error = UriTooLong(f"request target over {self.cfg.max_uri_bytes} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self.hdr_bytes += len(name) + len(value) + 4
        if self.hdr_bytes + len(self.url) > self.cfg.max_header_bytes:
            self.error = HeadersTooLarge(f"request headers over {self.cfg.max_header_bytes} bytes")
            raise _Refused
        if len(self.hdrs) >= self.cfg.max_headers:
            self.error = HeadersTooLarge(f"more than {self.cfg.max_headers} request headers")
            raise _Refused
        self.hdrs.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.in_head = False
        try:
            ex = self.build_exchange()
        except SidecarError as e:
            self.error = e
            raise _Refused from None
        if ex.body_length == 0:
            self.dispatch(ex)
        else:
            self.cur = ex
            self.parts = []
            self.parts_size = 0
            self.body_received = 0

    def on_body(self, body: bytes) -> None:
        self.body_received += len(body)
        limit = self.cfg.max_request_body
        if limit is not None and self.body_received > limit:
            err = BodyTooLarge(f"request body over {limit} bytes")
            if self.stream is not None:
                self.stream.fail(err)
                self.pause_reading()
                return
            self.error = err
            raise _Refused
        if self.stream is not None:
            self.stream.feed(body)
            return
        assert self.parts is not None and self.cur is not None
        self.parts.append(body)
        self.parts_size += len(body)
        if self.parts_size > COLLECT_LIMIT:
            self.start_stream(self.cur)

    def on_message_complete(self) -> None:
        if self.stream is not None:
            self.stream.feed_eof()
            self.stream = None
            self.body_incomplete = None
        elif self.cur is not None and self.parts is not None:
            ex = self.cur
            body = b"".join(self.parts) if len(self.parts) != 1 else self.parts[0]
            ex.body = body
            ex.body_length = len(body)
            self.cur = None
            self.parts = None
            self.dispatch(ex)

    # --- requests ----------------------------------------------------------------------------

    def build_exchange(self) -> Exchange:
        p = self.parser
        method = p.get_method().decode("ascii")
        version = p.get_http_version()
        hdrs = self.hdrs
        host: str | None = None
        hosts = 0
        connection: list[str] = []
        content_length: str | None = None
        chunked = False
        for name, value in hdrs:
            if name == "host":
                hosts += 1
                host = value
            elif name == "connection":
                connection.append(value)
            elif name == "content-length":
                content_length = value
            elif name == "transfer-encoding":
                chunked = True
            elif name == "expect":
                if value.lower() != "100-continue":
                    raise BadRequest(f"unsupported Expect: {value}")
                self.expect_continue = True
        if hosts > 1:
            raise BadRequest("more than one Host header")
        if hosts == 0 and version == "1.1":
            raise BadRequest("HTTP/1.1 request without a Host header")
        if host is not None and (not host or any(c in host for c in " /\\@?#")):
            raise BadRequest("malformed Host header")
        if method == "CONNECT":
            raise BadRequest("CONNECT is not supported: call http://127.0.0.1:PORT/<upstream>/...")
        url = self.url
        if url[:1] != b"/":
            if url == b"*":
                raise BadRequest("'*' request target is not supported")
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise BadRequest("malformed request target") from None
            if parsed.host is None:
                raise BadRequest("malformed request target")
            # absolute-form: its authority replaces Host (RFC 9112 §3.2.2) and only routes to
            # a configured upstream like Host does.
            host = parsed.host.decode("latin-1")
            path = (parsed.path or b"/").decode("latin-1")
            query = (parsed.query or b"").decode("latin-1")
        else:
            raw = url.decode("latin-1")
            path, _, query = raw.partition("?")
            if "#" in query:
                query = query.partition("#")[0]
            if "#" in path:
                path = path.partition("#")[0]
        drop = hop_by_hop_names(connection) if connection else HOP_BY_HOP
        if any(name in drop for name, _ in hdrs):
            hdrs = [kv for kv in hdrs if kv[0] not in drop]
        if chunked:
            body_length: int | None = None
        elif content_length is not None:
            body_length = int(content_length)  # llhttp validated it
            limit = self.cfg.max_request_body
            if limit is not None and body_length > limit:
                raise BodyTooLarge(f"request body of {body_length} bytes over the {limit} limit")
        else:
            body_length = 0
        ex = Exchange(
            method,
            path,
            Headers.wrap(hdrs),
            query=query,
            body=b"",
            body_length=body_length,
            client=self.client,
            listener=self.listener.name,
            http_version=version,
            start=perf_counter(),
        )
        ex.host = host
        if not p.should_keep_alive():
            ex.keep_alive = False
            self.input_closed = True  # nothing after a "Connection: close" request is read
        return ex

    def start_stream(self, ex: Exchange) -> None:
        assert self.parts is not None
        self.stream = RequestBody(self, self.parts, self.expect_continue)
        ex.body = self.stream
        self.body_incomplete = ex
        self.cur = None
        self.parts = None
        self.dispatch(ex)

    def send_continue(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_CONTINUE)

    def dispatch(self, ex: Exchange) -> None:
        self.state = _BUSY
        self.queue.append(ex)
        if len(self.queue) > MAX_PIPELINED:
            self.pause_reading()
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self.work())
        else:
            w = self.next_ready
            if w is not None and not w.done():
                w.set_result(None)

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                if not self.queue:
                    self.next_ready = loop.create_future()
                    await self.next_ready
                    self.next_ready = None
                    continue
                item = self.queue.popleft()
                if isinstance(item, Response):  # a refusal owed after earlier requests
                    await self.write_response(_REFUSED, item)
                    self.close()
                    return
                if (
                    self.read_paused
                    and len(self.queue) < MAX_PIPELINED // 2
                    and self.stream is None
                    and not self.input_closed
                ):
                    self.resume_reading()
                keep = await self.answer(item)
                if not keep or self.closed:
                    self.close()
                    return
                if not self.queue and self.cur is None and self.stream is None:
                    self.state = _HEAD if self.in_head else _IDLE
                    self.since = self.listener.now
                    if self.listener.draining:
                        self.close()
                        return
        except (asyncio.CancelledError, ConnectionError):
            self.close()

    async def answer(self, ex: Exchange) -> bool:
        """Route, handle and write one response; ``False`` when the connection must close."""
        listener = self.listener
        try:
            route, path = listener.routes.resolve(ex.path, ex.host, ex.headers)
            ex.path = path
            ex.upstream = route.upstream
            ex.route = route.name
            resp = await route.handler(ex)
        except SidecarError as e:
            listener.count_unrouted(e)
            resp = error_response(e)
        except Exception:
            log.exception(
                "unexpected error outside any route", extra={"fields": {"client": self.client}}
            )
            resp = error_response(SidecarError("unexpected error in the sidecar"))
            resp.close = True
        return await self.write_response(ex, resp)

    async def write_response(self, ex: Exchange, resp: Response) -> bool:
        transport = self.transport
        if transport is None or self.closed:
            await _abandon(resp)
            return False
        status = resp.status
        keep = ex.keep_alive and not resp.close and not self.listener.draining
        if self.body_incomplete is ex:
            # the app is still sending a body nobody read: the connection cannot be reused
            keep = False
        line = STATUS_LINES.get(status)
        if line is None:
            line = STATUS_LINES[502]
            status = 502
        out = [line]
        for name, value in resp.headers:
            out.append(f"{name}: {value}\r\n".encode("latin-1"))
        body = resp.body
        no_body = ex.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        chunked = False
        if status == 204 or status < 200:
            pass
        elif resp.length is not None:
            out.append(b"content-length: %d\r\n" % resp.length)
        elif not no_body:
            if ex.http_version == "1.1":
                chunked = True
                out.append(b"transfer-encoding: chunked\r\n")
            else:
                keep = False
        if not keep:
            out.append(b"connection: close\r\n")
        elif ex.http_version == "1.0":
            out.append(b"connection: keep-alive\r\n")
        out.append(b"\r\n")
        if isinstance(body, bytes):
            if body and not no_body:
                out.append(body)
            transport.write(b"".join(out))
            _complete(resp, True, 0 if no_body else len(body))
            return keep
        transport.write(b"".join(out))
        if no_body:
            await _abandon(resp)
            _complete(resp, True, 0)
            return keep
        sent = 0
        ok = False
        try:
            async for chunk in body:
                if not chunk:
                    continue
                sent += len(chunk)
                if chunked:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    transport.write(chunk)
                if self.write_paused:
                    await self.drain()
            if chunked:
                transport.write(b"0\r\n\r\n")
            ok = resp.length is None or sent == resp.length
        except (asyncio.CancelledError, ConnectionError):
            raise
        except SidecarError as e:
            log.info(
                "response body aborted",
                extra={"fields": {"upstream": ex.upstream, "reason": e.code, "detail": e.detail}},
            )
        except Exception:
            log.exception(
                "response body stream failed", extra={"fields": {"upstream": ex.upstream}}
            )
        finally:
            if not ok:
                await _abandon(resp)
            _complete(resp, ok, sent)
        return keep and ok

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("app connection closed")
        self.drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await self.drain_waiter
        finally:
            self.drain_waiter = None

    def refuse(self, error: SidecarError) -> None:
        """Answer a malformed request and close the connection (nothing after it is trusted)."""
        self.error = None
        self.input_closed = True
        self.pause_reading()
        self.listener.count_unrouted(error)
        if self.stream is not None:
            # the request being answered has a broken body: its handler gets the error while
            # reading it, answers with it, and the connection closes after that response
            self.stream.fail(error)
            return
        resp = error_response(error)
        resp.close = True
        if self.worker is not None and (self.queue or self.state == _BUSY):
            # responses to earlier pipelined requests are owed first
            self.queue.append(resp)
            w = self.next_ready
            if w is not None and not w.done():
                w.set_result(None)
            return
        if self.transport is not None and not self.closed:
            head = [STATUS_LINES[error.status]]
            for name, value in resp.headers:
                head.append(f"{name}: {value}\r\n".encode("latin-1"))
            assert isinstance(resp.body, bytes)
            head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(resp.body))
            head.append(resp.body)
            self.transport.write(b"".join(head))
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            self.listener.connection_closed(self)

    def timed_out(self, now: float) -> None:
        """Called by the listener's ticker; enforces header and idle timeouts."""
        if self.state == _HEAD and now - self.since > self.cfg.header_timeout:
            self.refuse(RequestTimeout("request head not received in time"))
        elif self.state == _IDLE and now - self.since > self.cfg.idle_timeout:
            self.close()


#: stands in for the request a refusal answers (it was never parsed into one).
_REFUSED = Exchange("GET", "/", Headers())


def _complete(resp: Response, ok: bool, sent: int) -> None:
    callbacks = resp.on_complete
    if callbacks:
        for cb in callbacks:
            try:
                cb(ok, sent)
            except Exception:
                log.exception("on_complete callback failed")


async def _abandon(resp: Response) -> None:
    body = resp.body
    if not isinstance(body, bytes):
        aclose: Any = getattr(body, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: S110 - best effort; the body's owner logs its own errors
                pass


class HttpListener:
    """The listening socket, its connections, their timeouts, and draining."""

    def __init__(
        self, cfg: HttpListenerConfig, routes: RouteTable, metrics: Metrics, name: str = "http"
    ) -> None:
        self.cfg = cfg
        self.routes = routes
        self.metrics = metrics
        self.name = name
        self.connections: set[HttpConnection] = set()
        self.server: asyncio.base_events.Server | None = None
        self.draining = False
        self.now = 0.0
        self._ticker: asyncio.Task[None] | None = None
        self._all_closed: asyncio.Event | None = None
        self._close_idle: asyncio.TimerHandle | None = None
        self._conn_gauge = metrics.downstream_connections.labels(name)
        self._unrouted = metrics.requests
        self._unrouted_errors = metrics.errors

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        self._all_closed = asyncio.Event()
        self.server = await loop.create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True, backlog=1024
        )
        self._ticker = loop.create_task(self._tick())

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def connection_opened(self, conn: HttpConnection) -> None:
        self.connections.add(conn)
        self._conn_gauge.inc()

    def connection_closed(self, conn: HttpConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._conn_gauge.dec()
            if not self.connections and self._all_closed is not None:
                self._all_closed.set()

    def count_unrouted(self, error: SidecarError) -> None:
        self._unrouted.labels(self.name, "", "", str(error.status)).inc()
        self._unrouted_errors.labels(self.name, "", error.code).inc()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            self.now = now = loop.time()
            for conn in list(self.connections):
                conn.timed_out(now)

    def stop_accepting(self) -> None:
        self.draining = True
        if self.server is not None:
            self.server.close()
        # Busy connections close after their response (it says "Connection: close"). Idle
        # keep-alive ones close after a short quiet period rather than at once: a request the app
        # sent just before the drain began may still be unread in the socket buffer, and closing
        # under it would fail a call that started before the signal (the keep-alive close race).
        self._close_idle = asyncio.get_running_loop().call_later(
            DRAIN_IDLE_QUIET, self._close_idle_connections
        )

    def _close_idle_connections(self) -> None:
        for conn in list(self.connections):
            if conn.state == _IDLE:
                conn.close()

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for connections to finish; abort the rest; say how many."""
        if self._all_closed is not None and self.connections:
            self._all_closed.clear()
            if not self.connections:
                self._all_closed.set()
            try:
                async with asyncio.timeout(grace):
                    await self._all_closed.wait()
            except TimeoutError:
                pass
        left = len(self.connections)
        workers = []
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
            conn.connection_lost(None)  # cancels the connection's worker task
            if conn.worker is not None and not conn.worker.done():
                workers.append(conn.worker)
        if self._close_idle is not None:
            self._close_idle.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
        if workers:
            # let cancelled calls unwind (their adapter aborts the upstream connection) before
            # the caller closes pools under them; a call that ignores cancellation is not awaited
            await asyncio.wait(workers, timeout=DRAIN_UNWIND)
        return left

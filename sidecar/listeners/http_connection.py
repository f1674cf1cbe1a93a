"""One app connection on the HTTP/1.1 listener: parse, refuse, dispatch in order, write back.

:class:`HttpConnection` is an asyncio Protocol. llhttp (httptools, strict mode) parses requests;
this class adds what llhttp leaves to its user (one ``Host``, a well-formed ``Host``, only
``chunked`` as transfer coding, no ``Transfer-Encoding`` on HTTP/1.0, only HTTP/1.0 and 1.1, no
CONNECT, http(s) absolute-form only, limits on URI, header bytes, header count and body). A request
that breaks a rule gets its 4xx (``x-sidecar-error`` and a one-line body) after the responses owed
to the requests pipelined before it, and the connection closes: nothing after malformed input is
trusted.

Requests are answered in order by one worker task that lives as long as the connection, so a call
costs no task creation. A request whose whole body arrived with its head (the common case) is
dispatched with a ``bytes`` body; otherwise the body streams through
:class:`~sidecar.listeners.http_body.RequestBody` while it arrives.

Reading from the app pauses for three reasons, tracked separately (each a reason of
:class:`~sidecar.flow_control.FlowControl`): a streaming body buffered past its high-water mark,
too many pipelined requests queued, and input closed (refused, or past the last request). A
connection that closes after a response first half-closes and discards what the
app still sends for a moment (lingering close), so the kernel does not answer unread input with a
reset that would destroy the response the app has not read yet.

Not here: response framing (:mod:`sidecar.listeners.http_response`), routing decisions
(:mod:`sidecar.routing`), the listening socket and timers (:mod:`sidecar.listeners.http`),
filters, or anything upstream-specific.
"""

from __future__ import annotations

__all__ = ["BUSY", "HEAD", "IDLE", "LINGER", "ConnectionState", "HttpConnection"]

import asyncio
import logging
import socket
from collections import deque
from enum import IntEnum
from time import perf_counter
from typing import TYPE_CHECKING, Final, cast

import httptools

from ..answers import error_response
from ..errors import (
    BadRequest,
    BodyTooLarge,
    HeadersTooLarge,
    RequestTimeout,
    SidecarError,
    UriTooLong,
)
from ..exchange import Exchange, Headers, Response
from ..flow_control import FlowControl
from ..http1 import (
    CLOSED_REQUEST_PARSER,
    HOP_BY_HOP,
    hop_by_hop_names,
    parse_absolute_target,
    split_origin_target,
    valid_host,
)
from ..routing import normalize_path
from .http_body import RequestBody
from .http_response import REFUSED, refusal_bytes, write_response

if TYPE_CHECKING:
    from .http import HttpListener

log = logging.getLogger("sidecar.listener")

#: A body smaller than this that arrives with its head is collected and sent in one write.
COLLECT_LIMIT = 64 * 1024
#: Requests queued behind the one in progress on a pipelining connection before reading pauses.
MAX_PIPELINED = 16
#: How long a closing connection reads and discards what the app still sends (lingering close).
LINGER_SECONDS = 2.0


class ConnectionState(IntEnum):
    """What a connection is doing, which decides the listener's timer that applies to it."""

    #: waiting for a request: the idle timeout
    IDLE = 0
    #: receiving a request head: the header timeout
    HEAD = 1
    #: answering: the route's own timeout, none of the listener's
    BUSY = 2
    #: closing, reading only to discard what the app still sends: the linger
    LINGER = 3


# The states as module constants, which the hot path reads as globals: ``ConnectionState.BUSY``
# looks the member up on the enum class on every access (~75 ns), an IntEnum member compares as
# an int.
IDLE: Final = ConnectionState.IDLE
HEAD: Final = ConnectionState.HEAD
BUSY: Final = ConnectionState.BUSY
LINGER: Final = ConnectionState.LINGER

#: Why reading from the app is paused, besides a waiting body (``BODY_WAITING``): more than
#: ``MAX_PIPELINED`` requests queued, and input closed (refused or past the last request; not
#: while lingering, which reads to discard).
_QUEUE_FULL: Final = 2
_INPUT_CLOSED: Final = 4

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: request methods as llhttp reports them (bytes) → ``str``, filled as they are seen.
_METHODS: dict[bytes, str] = {}


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the reason is in ``conn.error``."""


class HttpConnection(FlowControl):
    """One app connection."""

    def __init__(self, listener: HttpListener) -> None:
        super().__init__()
        cfg = listener.cfg
        self.listener = listener
        self.max_header_bytes = cfg.max_header_bytes
        self.max_headers = cfg.max_headers
        self.max_uri_bytes = cfg.max_uri_bytes
        self.max_body = cfg.max_request_body
        self.parser = httptools.HttpRequestParser(self)
        self.loop = asyncio.get_running_loop()
        self.client = ""
        #: dispatched requests in order; a ``Response`` is a refusal owed after them.
        self.queue: deque[Exchange | Response] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.next_ready: asyncio.Future[None] | None = None
        self.state: ConnectionState = IDLE
        #: listener time the current state began (the ticker's clock, a second coarse at most).
        self.since = 0.0
        #: no more bytes are parsed: refused, past the last request, or closing.
        self.input_closed = False
        #: the request being parsed is the last one (``Connection: close``, HTTP/1.0).
        self.last_request = False
        self.refused = False
        self.lingering = False
        self.error: SidecarError | None = None
        # the request being parsed
        self.url = b""
        self.hdrs: list[tuple[str, str]] = []
        self.hdr_bytes = 0
        self.head_pending = 0
        self.in_head = False
        self.mid_message = False
        self.begun = 0
        self.expect_continue = False
        self.cur: Exchange | None = None
        self.parts: list[bytes] | None = None
        self.parts_size = 0
        self.body_received = 0
        self.stream: RequestBody | None = None
        #: the dispatched request whose body is still arriving from the app.
        self.body_incomplete: Exchange | None = None
        #: absolute-form requests (routed by their authority only); usually ``None``.
        self.absolute_form: set[Exchange] | None = None
        #: the last ``Host`` value found well-formed (checked once per connection, not per call).
        self.valid_host: str | None = None

    # --- connection events -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.listener.connection_opened(self):
            # over the listener's connection cap: its handle goes back at once
            self.closed = self.input_closed = True
            cast(asyncio.Transport, transport).abort()
            return
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = f"{peer[0]}:{peer[1]}"
        self.since = self.listener.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.input_closed = True
        # frees this connection by reference counting (see CLOSED_REQUEST_PARSER)
        self.parser = CLOSED_REQUEST_PARSER
        self.listener.connection_closed(self)
        stream = self.stream
        if stream is not None and not stream.eof:
            stream.fail(asyncio.CancelledError())
        worker = self.worker
        if worker is not None and not worker.done():
            worker.cancel()
        self.fail_drain()

    def eof_received(self) -> bool | None:
        # The app's FIN means it is gone, as nginx and Go take it: a half-close and a full close
        # look the same until a write fails, and keeping the call alive for an app that left
        # would hold an upstream connection for nothing. Close; in-flight calls are cancelled.
        return None

    # what a RequestBody asks of its connection (``BodySource``): the flow control's pause for
    # a waiting body (its default reason), without a call in between
    pause_body = FlowControl.pause_reading
    resume_body = FlowControl.resume_reading

    def data_received(self, data: bytes) -> None:
        if self.input_closed:
            return  # refused, lingering, or past the last request: discarded
        if self.state == IDLE:
            self.state = HEAD
            self.since = self.listener.now
        carry = self.in_head
        fresh = not self.mid_message
        self.begun = 0
        view: bytes | memoryview = data
        while True:
            try:
                self.parser.feed_data(view)
                break
            except httptools.HttpParserUpgrade as e:
                # build_exchange let an Upgrade request through as a plain one (a server may
                # ignore Upgrade, RFC 9110 §7.8); llhttp stopped after its head and what follows
                # is the next request. A memoryview keeps many of them in one read linear.
                view = memoryview(view)[e.args[0] :]
                if not view or self.input_closed:
                    break
            except httptools.HttpParserError as e:
                self._parse_failed(e)
                return
        if self.input_closed:
            return
        if self.in_head:
            # httptools buffers a header until it is complete before calling on_header, so one
            # endless header would grow memory unchecked: count the raw bytes of the head too.
            if self.begun == 0 and carry:
                self.head_pending += len(data)
            elif self.begun == 1 and fresh:
                self.head_pending = len(data)
            if self.head_pending > self.max_header_bytes:
                self.refuse(HeadersTooLarge(f"request head over {self.max_header_bytes} bytes"))
                return
        cur = self.cur
        if cur is not None:
            self.start_stream(cur)  # the head arrived, its body is still coming: dispatch now

    def _parse_failed(self, e: httptools.HttpParserError) -> None:
        if self.input_closed and self.error is None:
            return  # bytes after the last request (``Connection: close``) are dropped
        error = self.error
        if error is None:
            cause = e.__context__
            if isinstance(cause, SidecarError):
                error = cause
            elif isinstance(e, httptools.HttpParserCallbackError) and cause is not None:
                log.error("listener parser callback failed", exc_info=cause)
                error = SidecarError("unexpected error in the sidecar")
            else:
                error = BadRequest(f"malformed request: {e}")
        self.refuse(error)

    # --- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.listener.draining:
            # a request that starts once the drain began (a keep-alive race on an idle
            # connection) is answered, and is the last one on this connection
            self.last_request = True
        self.url = b""
        self.hdrs = []
        self.hdr_bytes = 0
        self.head_pending = 0
        self.expect_continue = False
        self.in_head = self.mid_message = True
        self.begun += 1
        if self.state != BUSY:
            self.state = HEAD
            self.since = self.listener.now

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_uri_bytes:
            self.error = UriTooLong(f"request target over {self.max_uri_bytes} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self.hdr_bytes += len(name) + len(value) + 4
        if self.hdr_bytes + len(self.url) > self.max_header_bytes:
            self.error = HeadersTooLarge(f"request headers over {self.max_header_bytes} bytes")
            raise _Refused
        if not self.in_head:
            return  # a chunked body's trailer: counted above, never forwarded
        if len(self.hdrs) >= self.max_headers:
            self.error = HeadersTooLarge(f"more than {self.max_headers} request headers")
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
        limit = self.max_body
        if limit is not None and self.body_received > limit:
            self.error = BodyTooLarge(f"request body over {limit} bytes")
            raise _Refused
        stream = self.stream
        if stream is not None:
            stream.feed(body)
            return
        assert self.parts is not None and self.cur is not None
        self.parts.append(body)
        self.parts_size += len(body)
        if self.parts_size > COLLECT_LIMIT:
            self.start_stream(self.cur)

    def on_message_complete(self) -> None:
        self.mid_message = False
        if self.last_request:
            self.input_closed = True
            self.pause_reading(_INPUT_CLOSED)
        stream = self.stream
        if stream is not None:
            stream.feed_eof()
            self.stream = None
            self.body_incomplete = None
            self.resume_body()  # no more of it can come; the next request may be read
        elif self.cur is not None and self.parts is not None:
            ex = self.cur
            parts = self.parts
            body = b"".join(parts) if len(parts) != 1 else parts[0]
            ex.body = body
            ex.body_length = len(body)
            self.cur = None
            self.parts = None
            self.dispatch(ex)

    # --- requests ----------------------------------------------------------------------------

    def build_exchange(self) -> Exchange:
        """The checks llhttp leaves to us, then the protocol-neutral :class:`Exchange`."""
        p = self.parser
        version = p.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadRequest(f"HTTP/{version} is not supported")
        raw_method = p.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            # llhttp accepts only the methods it knows: this stays a few dozen entries
            method = _METHODS[raw_method] = raw_method.decode("ascii")
        if method == "CONNECT":
            raise BadRequest("CONNECT is not supported: call http://127.0.0.1:PORT/<upstream>/...")
        hdrs = self.hdrs
        host: str | None = None
        hosts = 0
        connection: list[str] = []
        content_length: str | None = None
        te: str | None = None
        hop = False
        for name, value in hdrs:
            if name == "host":
                hosts += 1
                host = value
            elif name not in HOP_BY_HOP:
                continue  # one set lookup for the ordinary headers
            hop = True
            if name == "connection":
                connection.append(value)
            elif name == "content-length":
                content_length = value
            elif name == "transfer-encoding":
                # several lines are one comma-joined list (RFC 9110 §5.3): judge all of them,
                # or "gzip" then "chunked" would pass where "gzip, chunked" is refused
                te = value if te is None else f"{te}, {value}"
            elif name == "expect":
                if value.lower() != "100-continue":
                    raise BadRequest(f"unsupported Expect: {value}")
                # an HTTP/1.0 client cannot expect 100 Continue (RFC 9110 §10.1.1)
                self.expect_continue = version == "1.1"
        if hosts != 1:
            if hosts > 1:
                raise BadRequest("more than one Host header")
            if version == "1.1":
                raise BadRequest("HTTP/1.1 request without a Host header")
        elif host != self.valid_host:  # an app sends the same Host on every request
            if host is None or not valid_host(host):
                raise BadRequest("malformed Host header")
            self.valid_host = host
        if te is not None:
            # llhttp refuses most bad codings; "gzip, chunked" it lets through, and a 1.0
            # request with Transfer-Encoding has faulty framing (RFC 9112 §6.1)
            if version == "1.0":
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
            if te.strip().lower() != "chunked":
                raise BadRequest(f"unsupported Transfer-Encoding: {te}")
        if p.should_upgrade() and (te is not None or content_length not in (None, "0")):
            # llhttp stops at an Upgrade request's head, so its body could not be read
            raise BadRequest("a request body together with Upgrade is not supported")
        url = self.url
        absolute = False
        if url[:1] == b"/":
            path, query = split_origin_target(url.decode("latin-1"))
        elif url == b"*":
            raise BadRequest("the '*' request target is not supported")
        else:
            host, path, query = parse_absolute_target(url)
            absolute = True
        if hop:  # "connection" is hop-by-hop itself: the headers it names are only dropped here
            drop = hop_by_hop_names(connection) if connection else HOP_BY_HOP
            hdrs = [kv for kv in hdrs if kv[0] not in drop]
        body_length: int | None
        if te is not None:
            body_length = None
        elif content_length is not None:
            body_length = int(content_length)  # llhttp validated it
            limit = self.max_body
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
        if absolute:
            if self.absolute_form is None:
                self.absolute_form = set()
            self.absolute_form.add(ex)
        if not p.should_keep_alive():
            ex.keep_alive = False
            self.last_request = True
        return ex

    def start_stream(self, ex: Exchange) -> None:
        assert self.parts is not None
        stream = self.stream = RequestBody(self, self.parts, self.expect_continue)
        ex.body = stream
        self.body_incomplete = ex
        self.cur = None
        self.parts = None
        self.dispatch(ex)

    def send_continue(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_CONTINUE)

    def dispatch(self, ex: Exchange) -> None:
        self.state = BUSY
        self.listener.began += 1  # the wait for a quiet app sees every call (app_quiet)
        queue = self.queue
        queue.append(ex)
        if len(queue) > MAX_PIPELINED:
            self.pause_reading(_QUEUE_FULL)
        if self.worker is None:
            self.worker = self.loop.create_task(self.work())
        else:
            w = self.next_ready
            if w is not None and not w.done():
                w.set_result(None)

    async def work(self) -> None:
        """Answer dispatched requests in order, for as long as the connection lives."""
        queue = self.queue
        try:
            while True:
                if not queue:
                    self.next_ready = self.loop.create_future()
                    await self.next_ready
                    self.next_ready = None
                    continue
                item = queue.popleft()
                if self._read_paused & _QUEUE_FULL and len(queue) < MAX_PIPELINED // 2:
                    self.resume_reading(_QUEUE_FULL)
                if isinstance(item, Response):  # a refusal owed after earlier requests
                    await write_response(self, REFUSED, item)
                    break
                if not await self.answer(item):
                    break
                if not queue and self.stream is None:
                    if self.input_closed or (self.listener.draining and not self.mid_message):
                        # past the last request, or shutting down with no request still
                        # arriving (write_response said Connection: close): nothing more comes
                        break
                    self.state = HEAD if self.in_head else IDLE
                    self.since = self.listener.now
        except (asyncio.CancelledError, ConnectionError):
            self.close(abort=True)
            return
        self.finish()

    async def answer(self, ex: Exchange) -> bool:
        """Route, handle and write one response; ``False`` when the connection must close."""
        listener = self.listener
        body = ex.body
        if type(body) is RequestBody and isinstance(body.error, SidecarError):
            # its body broke (malformed, over the limit) while it waited behind earlier
            # requests: refuse it here rather than start a doomed call upstream
            listener.count_unrouted(body.error)
            resp = error_response(body.error)
            resp.close = True
            return await write_response(self, ex, resp)
        try:
            path = normalize_path(ex.path)
            af = self.absolute_form
            if af and ex in af:
                af.discard(ex)
                route, path = listener.routes.resolve(
                    path, ex.host, ex.headers, authority_only=True
                )
            else:
                route, path = listener.routes.resolve(path, ex.host, ex.headers)
            ex.path = path
            ex.upstream = route.upstream
            ex.route = route.name
            resp = await route.handler(ex)
        except SidecarError as e:
            listener.count_unrouted(e)
            resp = error_response(e)
            unrouted = listener.on_unrouted
            if unrouted is not None:
                # logged once written, with the bytes the app really got (the error's body)
                # (``e`` is unbound when the except block ends: the callback keeps ``refused``)
                refused = e
                resp.on_complete = [lambda ok, sent: unrouted(ex, refused, sent)]
        except Exception:
            log.exception(
                "unexpected error outside any route", extra={"fields": {"client": self.client}}
            )
            resp = error_response(SidecarError("unexpected error in the sidecar"))
            resp.close = True
        return await write_response(self, ex, resp)

    def begin_drain(self) -> None:
        """Shutting down: answer what was already read, then close (the listener calls this).

        The requests queued behind the one in flight are answered, the last with
        ``Connection: close`` (see ``more_owed``); a request still arriving is received and
        answered too; nothing after those is read. An idle connection keeps reading until the
        listener closes it, so a request that raced the drain is still answered.
        """
        if self.closed or self.input_closed:
            return
        if self.mid_message:
            self.last_request = True  # on_message_complete closes input after it
        elif self.queue or self.state == BUSY:
            self.input_closed = True
            self.pause_reading(_INPUT_CLOSED)

    def more_owed(self) -> bool:
        """Whether responses are owed after the one being written (dispatched or arriving)."""
        return bool(self.queue) or (self.mid_message and not self.input_closed)

    # --- responses ---------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until the app reads what was written; an app that stops reading is cut off."""
        try:
            async with asyncio.timeout(self.listener.cfg.idle_timeout):
                await super().drain()
        except TimeoutError:
            raise ConnectionResetError("the app stopped reading its response") from None

    def closed_error(self) -> BaseException:
        return ConnectionResetError("app connection closed")

    def refuse(self, error: SidecarError) -> None:
        """Answer a malformed request and close the connection (nothing after it is trusted)."""
        self.error = None
        if self.closed or self.refused or self.lingering:
            return
        self.refused = self.input_closed = True
        self.pause_reading(_INPUT_CLOSED)
        stream = self.stream
        if stream is not None and not stream.failed:
            # the request being answered has a broken body: its handler gets the error while
            # reading it and answers with it; the connection closes after that response
            stream.fail(error)
            return
        self.listener.count_unrouted(error)
        resp = error_response(error)
        resp.close = True
        if self.worker is not None and (self.queue or self.state == BUSY):
            # responses to earlier pipelined requests are owed first
            self.queue.append(resp)
            w = self.next_ready
            if w is not None and not w.done():
                w.set_result(None)
            return
        if self.transport is not None:
            self.transport.write(refusal_bytes(error.status, resp))
        self.finish()

    def finish(self) -> None:
        """Close after the last response: half-close, then discard input for a moment."""
        transport = self.transport
        if transport is None or self.closed or self.lingering:
            return
        self.input_closed = True
        try:
            can_linger = transport.can_write_eof()
            if can_linger:
                transport.write_eof()  # sent once the buffered response is flushed
        except (OSError, RuntimeError):
            can_linger = False
        if not can_linger:
            self.close()
            return
        self.lingering = True
        self.state = LINGER
        self.since = self.listener.now
        # read again, to discard (unless a waiting body still holds reading): the app's FIN
        # ends the linger early
        self.resume_reading(_INPUT_CLOSED)

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = self.input_closed = True
        transport = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        self.listener.connection_closed(self)

    def timed_out(self, now: float) -> None:
        """Called by the listener's ticker; enforces header and idle timeouts and the linger."""
        state = self.state
        if state == HEAD:
            if now - self.since > self.listener.cfg.header_timeout:
                self.refuse(RequestTimeout("request head not received in time"))
        elif state == IDLE:
            if now - self.since > self.listener.cfg.idle_timeout:
                self.close()
        elif state == LINGER and now - self.since > LINGER_SECONDS:
            self.close(abort=True)

"""One keep-alive HTTP/1.1 connection to an upstream: asyncio Protocol + httptools response parser.

A connection carries one exchange at a time. The adapter calls :meth:`UpstreamConnection.begin`,
writes the request, and awaits the returned future for the response head. A response whose body
arrived with its head comes back with a ``bytes`` body and the connection is already back in its
pool; a longer body streams through :class:`~sidecar.upstream.body.UpstreamBody`, which pauses
reading from the upstream while the app is slow.

The upstream is not trusted: its response is parsed strictly (llhttp), limited (head size, header
count), stripped of hop-by-hop headers, and anything malformed, ambiguous or unasked for (a second
response, ``101``, a transfer coding we would have to hide) becomes ``upstream_protocol`` (502) with
the connection closed, never reused. Socket and parser errors become typed :mod:`sidecar.errors`
here and nowhere else.

Not here: which connection to use (:mod:`sidecar.upstream.pool`) or what to write (the adapter).
"""

from __future__ import annotations

__all__ = ["ConnectionOwner", "OwnerOf", "UpstreamBody", "UpstreamConnection"]

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any, Final, cast

import httptools

from ..errors import SidecarError, UpstreamProtocolError, UpstreamReset, UpstreamTLSError
from ..exchange import Headers, Response
from ..flow_control import FlowControl, write_pass
from ..http1 import (
    CLOSED_RESPONSE_PARSER,
    HOP_BY_HOP,
    NAME_MAX_BYTES,
    NamesByPlace,
    content_length_value,
    hop_by_hop_names,
)
from ..waiter import Wake, new_future, set_result_now
from .body import UpstreamBody

#: Status line and headers of one response; llhttp buffers a header until it ends, so this is
#: checked on raw bytes too, or an endless header line would grow memory without bound.
MAX_RESPONSE_HEADER_BYTES: Final = 64 * 1024
MAX_RESPONSE_HEADERS: Final = 200
_NO_BODY: Final = (204, 304)

#: :data:`HOP_BY_HOP` as the lower-case bytes the parser hands over: response headers stay bytes
#: until someone reads them (:meth:`Headers.from_wire`).
_HOP_BY_HOP_WIRE: Final = frozenset(name.encode("latin-1") for name in HOP_BY_HOP)
#: header names as received → lower-case, filled as they are seen: an upstream sends the same
#: few names in every response, so each is lowered once and its bytes, whose hash is then
#: computed once too, shared. Bounded in entries and in each name's length.
_WIRE_NAMES: Final[dict[bytes, bytes]] = {}
_WIRE_NAMES_MAX: Final = 512
#: the names to drop beyond the standard ones, as bytes, per single ``Connection`` value as
#: received (an upstream sends one or two distinct ones, ``keep-alive`` above all); bounded, as
#: ``hop_by_hop_names``' cache
_WIRE_NAMED: Final[dict[bytes, frozenset[bytes]]] = {}
_NONE_NAMED: Final[frozenset[bytes]] = frozenset()
_WIRE_NAMED_MAX: Final = 64
#: the longest value remembered: ``keep-alive``, ``close``, a few names, never a hostile 60 KB
_WIRE_NAMED_BYTES: Final = 256


class ConnectionOwner:
    """What a connection tells of its end: the pool that owns it (a method call, compiled: no
    callback objects on the path of every call)."""

    def free(self, conn: UpstreamConnection) -> None:
        """``conn`` finished an exchange and can carry another."""

    def lost(self, conn: UpstreamConnection) -> None:
        """``conn`` closed (either side)."""


class OwnerOf(ConnectionOwner):
    """An owner made of functions (a compiled class cannot be subclassed by interpreted code:
    tests build owners from functions instead)."""

    def __init__(
        self,
        free: Callable[[UpstreamConnection], None],
        lost: Callable[[UpstreamConnection], None],
    ) -> None:
        self._free = free
        self._lost = lost

    def free(self, conn: UpstreamConnection) -> None:
        self._free(conn)

    def lost(self, conn: UpstreamConnection) -> None:
        self._lost(conn)


class UpstreamConnection(FlowControl):
    """A connection to one upstream, owned by its :class:`~sidecar.upstream.pool.Pool`.

    Back-pressure (:class:`~sidecar.flow_control.FlowControl`): the request-body pump waits in
    ``drain`` while the upstream reads slowly; a response body buffered past its high-water mark
    pauses reading (``pause_reading``, called by :class:`UpstreamBody`).
    """

    def __init__(self, owner: ConnectionOwner) -> None:
        super().__init__()
        self._owner = owner
        self.parser = httptools.HttpResponseParser(self)
        #: checked out of the pool for an exchange.
        self.busy = False
        #: may carry another exchange after this one (cleared on any doubt, never set again).
        self.reusable = True
        #: counted by the pool (set once ``create_connection`` handed it over).
        self.pooled = False
        #: loop time after which an idle connection is not used again (set by the pool).
        self.expires = 0.0
        #: seconds the upstream said it keeps an idle connection (``Keep-Alive: timeout=N``).
        self.keep_alive_hint: float | None = None
        self.requests = 0
        #: the whole request was written (a response that ends before it makes reuse unsafe).
        self.request_sent = True
        #: a task writing a streaming request body; cancelled when the connection closes.
        self.pump: asyncio.Task[None] | None = None
        self._head: asyncio.Future[Response] | None = None
        #: the waiting task's kept wake-up, until the head is delivered
        self._wake: Wake | None = None
        self._resp: Response | None = None
        #: the response's end-to-end headers as read, and apart its hop-by-hop ones: sorted as
        #: they come (by the name at each place, see ``on_header``), so the head passes the
        #: ordinary ones on as they are
        self._hdrs: list[tuple[bytes, bytes]] = []
        self._hop: list[tuple[bytes, bytes]] = []
        #: the header names of the last response, by place: each lower-cased, and whether it is
        #: hop-by-hop
        self._names: NamesByPlace[tuple[bytes, bool]] = NamesByPlace()
        self._hdr_bytes = 0
        self._raw_head_bytes = 0
        self._parts: list[bytes] | None = None
        self._body: UpstreamBody | None = None
        #: an exchange is waiting for its final (non-1xx) response to end.
        self._awaiting = False
        self._in_head = False
        self._head_ready = False
        self._done = False
        self._head_only = False
        self._got_bytes = False
        #: the exchange's first bytes began ``HTTP/1.1 `` (its status line, read as it came)
        self._http11 = False
        self._error: SidecarError | None = None
        self._close_delimited = False
        #: the loop the connection runs on, found once (``get_running_loop`` costs a
        #: ``getpid()`` system call on every call in Python 3.11)
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- transport events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.write_pass = write_pass(asyncio.get_running_loop())
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.reusable = False
        self.unsent = None  # nowhere to go
        if self._awaiting:
            if self._close_delimited and self._resp is not None and exc is None:
                self._done = True  # a read-until-close body ends here, cleanly (FIN, not RST)
                if self._head_ready:
                    self._deliver_head()
                self._finish()
            elif isinstance(exc, ssl.SSLError) and not self._got_bytes:
                # TLS 1.3 servers refuse a client certificate after the handshake, with an alert
                self._fail(UpstreamTLSError(f"TLS error from upstream: {exc.reason or exc}"))
            else:
                self._fail(UpstreamReset(self._reset_reason()))
        pump = self.pump
        if pump is not None and not pump.done():
            pump.cancel()
        self.fail_drain()
        self.parser = CLOSED_RESPONSE_PARSER  # frees it by reference counting (see there)
        self._owner.lost(self)

    def _reset_reason(self) -> str:
        if self._got_bytes:
            return "upstream closed the connection before the response was complete"
        if self.requests == 1 and self.transport is not None:
            if self.transport.get_extra_info("ssl_object") is not None:
                return (
                    "upstream closed the TLS connection right after the handshake, before "
                    "responding (as when it refuses the client certificate)"
                )
        return "upstream closed the connection before responding"

    def eof_received(self) -> bool | None:
        return None  # half-closed by the upstream: close our side too

    def closed_error(self) -> SidecarError:
        return UpstreamReset("upstream closed the connection while receiving")

    def data_received(self, data: bytes) -> None:
        if not self._awaiting:
            # bytes nobody asked for: the upstream is confused, never reuse this connection
            self.abort()
            return
        if not self._got_bytes:
            self._got_bytes = True
            # the status line leads the exchange's first bytes: HTTP/1.1 seen here spares
            # asking httptools for the version, whose answer costs a str.format
            self._http11 = data.startswith(b"HTTP/1.1 ")
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(UpstreamProtocolError("upstream switched protocols unasked"))
            return
        except httptools.HttpParserError as e:
            self._refuse(self._error or UpstreamProtocolError(f"malformed response: {e}"))
            return
        if self._in_head:
            # llhttp holds a header line until it ends: bound what it may hold
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > MAX_RESPONSE_HEADER_BYTES:
                self._refuse(
                    UpstreamProtocolError(
                        f"upstream response head over {MAX_RESPONSE_HEADER_BYTES} bytes"
                    )
                )
                return
        if self._head_ready:
            resp = self._take_head()
            head = self._head
            if head is not None and head.cancelled():
                # the call was abandoned (its app left, its deadline passed) before its answer
                # came: its cleanup, still queued, aborts this connection, which must not be
                # given to another call in the meantime
                self.reusable = False
            if self._done:
                self._finish()  # the connection is free before the call resumes
            if head is not None and not head.done():
                # the call resumes now, in this callback (its step is this read's last act),
                # not on the loop's next pass
                loop = self._loop
                assert loop is not None  # set by begin()
                wake = self._wake
                self._wake = None  # an idle connection holds no app connection's task
                set_result_now(head, resp, loop, wake)
        elif self._done:
            self._finish()

    # --- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # Kept although each callback costs every response a call: it is the only one at a
        # message's first byte. A second response that starts in the same read as the first,
        # even by a byte, is refused here; caught only at its first header, a status line
        # cut short would stay in the parser and answer the next call on this connection.
        if self._done or not self._awaiting:
            raise self._violation("upstream sent more than one response")
        self._hdrs = []
        self._hop.clear()  # read in on_headers_complete and nowhere else: one list reused
        self._hdr_bytes = 0
        self._raw_head_bytes = 0
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._hdr_bytes = self._hdr_bytes + len(name) + len(value) + 4
        if size > MAX_RESPONSE_HEADER_BYTES:
            raise self._violation(f"upstream response head over {MAX_RESPONSE_HEADER_BYTES} bytes")
        hdrs = self._hdrs
        hop = self._hop
        at = len(hdrs) + len(hop)
        if at >= MAX_RESPONSE_HEADERS:
            raise self._violation(f"upstream response has more than {MAX_RESPONSE_HEADERS} headers")
        read = self._names.get(at, name)
        if read is None:
            # bytes.lower() is str.lower() here: llhttp refuses any name byte outside the
            # ASCII token characters; decoded (latin-1) only if a filter or plugin reads them
            known = _WIRE_NAMES.get(name)
            key = known if known is not None else _wire_name(name)
            read = (key, key in _HOP_BY_HOP_WIRE)
            self._names.put(at, name, read)
        if read[1]:
            hop.append((read[0], value))
        else:
            hdrs.append((read[0], value))

    def _check_version(self, status: int) -> None:
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise self._violation(f"upstream answered HTTP/{version} {status}")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        status = parser.get_status_code()
        if status > 599:
            raise self._violation(f"upstream answered HTTP/{parser.get_http_version()} {status}")
        if status < 200:
            self._check_version(status)
            self._http11 = False  # the final response's status line is not at the start
            if status == 101:
                raise self._violation("upstream switched protocols unasked")
            return  # interim response (100 Continue, 103 Early Hints): skip it
        # the headers passed on: all but the hop-by-hop ones, sorted out as they came
        kept = self._hdrs
        self._hdrs = []  # a chunked body's trailers, if any, go elsewhere
        connection: list[bytes] | None = None
        length: int | None = None
        chunked = False
        for name, raw in self._hop:
            if name == b"content-length":
                length = content_length_value(raw)  # llhttp checked it: digits
            elif name == b"connection":
                if connection is None:
                    connection = []
                connection.append(raw)
            elif name == b"transfer-encoding":
                # read as str, as a filter would see it: str.strip() also strips the latin-1
                # spaces that bytes.strip() keeps
                value = raw.decode("latin-1")
                if value.strip().lower() != "chunked":
                    # a coding we would strip with the header and hand over undecoded
                    raise self._violation(f"unsupported transfer-encoding from upstream: {value}")
                chunked = True
            elif name == b"keep-alive":
                self.keep_alive_hint = _keep_alive_timeout(raw.decode("latin-1"))
        if connection is not None:
            # the headers a Connection header names (beyond the standard hop-by-hop ones,
            # already left out) are dropped too
            named = _wire_named(connection)
            if named:
                kept = [kv for kv in kept if kv[0] not in named]
        keep_alive = parser.should_keep_alive()
        # kept alive with no Connection header, llhttp has read HTTP/1.1 (it refuses 1.2 and
        # the like): only the other answers ask httptools, whose answer costs a str.format
        if not self._http11 and not (keep_alive and connection is None):
            self._check_version(status)
        if not keep_alive:
            self.reusable = False
        if self._head_only or status in _NO_BODY:
            if status == 204:
                length = None  # 204 has no length; HEAD and 304 keep the GET's
        elif chunked:
            length = None
        elif length is None:
            self._close_delimited = True  # body runs until the upstream closes
            self.reusable = False
        self._resp = Response(status, Headers.from_wire(kept), b"", length)
        self._parts = []
        self._head_ready = True
        if self._head_only:
            # llhttp cannot be told a HEAD response has no body: the message ends here and the
            # parser, now waiting for a body that never comes, is replaced in _finish().
            self._done = True

    def on_body(self, body: bytes) -> None:
        if self._head_only:
            # bytes after a HEAD answer's head, which has no body: llhttp, not knowing the
            # request was HEAD, reads them as one; they are not passed on, and an upstream that
            # sends them cannot be trusted with another exchange
            self.reusable = False
            return
        if self._body is not None:
            self._body.feed(body)
        elif self._parts is not None:
            self._parts.append(body)

    def on_message_complete(self) -> None:
        if self._resp is not None:  # else the end of an interim (1xx) response
            self._done = True

    def _violation(self, reason: str) -> UpstreamProtocolError:
        """The response breaks the protocol: recorded (``data_received`` reports it once
        llhttp stops) and returned for the callback to raise, which stops llhttp."""
        self._error = UpstreamProtocolError(reason)
        return self._error

    # --- exchanges ---------------------------------------------------------------------------

    def _deliver_head(self) -> None:
        """Hand the response head over (through the loop), with the whole body if it is here."""
        resp = self._take_head()
        head = self._head
        if head is not None and not head.done():
            head.set_result(resp)

    def _take_head(self) -> Response:
        """The response head to hand over, with the whole body if it is here."""
        self._head_ready = False
        resp = self._resp
        assert resp is not None
        parts = self._parts or []
        self._parts = None
        if self._done:
            resp.body = b"".join(parts) if len(parts) != 1 else parts[0]
            if resp.length is None and not self._head_only and resp.status not in _NO_BODY:
                resp.length = len(resp.body)
        else:
            body = self._body = UpstreamBody(self)
            for p in parts:
                body.feed(p)
            resp.body = body
        return resp

    def _finish(self) -> None:
        """The response is complete: give the connection back if it can carry another call."""
        body = self._body
        self._body = None
        self._resp = None
        self._done = False
        self._awaiting = False
        self._close_delimited = False
        if self._head_only:
            self.parser = httptools.HttpResponseParser(self)
        if self._read_paused:
            self.resume_reading()
        if body is not None:
            body.feed_eof()
        if self.reusable and self.request_sent and not self.closed:
            self._owner.free(self)
        else:
            self.abort()  # the pool forgets it in connection_lost

    def _refuse(self, error: SidecarError) -> None:
        """A protocol violation: fail the exchange unless its response was already whole."""
        self.reusable = False
        if self._done:  # trailing garbage after a complete response: deliver it, drop the conn
            if self._head_ready:
                self._deliver_head()
            self._finish()
            return
        self._fail(error)
        self.abort()

    def _fail(self, error: SidecarError) -> None:
        self.reusable = False
        self._awaiting = False
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        body = self._body
        if body is not None:
            self._body = None
            body.fail(error)

    def carries(self, head: asyncio.Future[Response]) -> bool:
        """Whether the exchange ``head`` (what :meth:`begin` returned) is still this
        connection's: once it ended, the connection may carry another call."""
        return self._head is head

    def begin(self, head_only: bool, wake: Wake | None = None) -> asyncio.Future[Response]:
        """Start an exchange; the returned future resolves with the response head. ``wake``:
        the calling task's kept wake-up, if it keeps one (see ``sidecar.waiter``)."""
        self.requests += 1
        self._wake = wake
        self._head_only = head_only
        self._got_bytes = False
        self._http11 = False
        self._error = None
        self._resp = None
        self._body = None
        self._done = False
        self._head_ready = False
        self._in_head = False
        self._awaiting = True
        self.request_sent = False
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._head = head = new_future(loop)
        if self.closed:
            head.set_exception(UpstreamReset("upstream closed the connection before responding"))
        return head

    @property
    def got_bytes(self) -> bool:
        """Whether any response byte arrived for the current exchange."""
        return self._got_bytes

    def abort(self) -> None:
        """Close now, without reuse (the pool forgets it through ``connection_lost``)."""
        self.reusable = False
        self.unsent = None  # a request not sent yet never is
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def describe(self) -> dict[str, Any]:
        return {"busy": self.busy, "requests": self.requests}


def _wire_name(name: bytes) -> bytes:
    """A header name lower-cased, kept for the next response if the table has room."""
    key = name.lower()
    if len(name) <= NAME_MAX_BYTES and len(_WIRE_NAMES) < _WIRE_NAMES_MAX:
        _WIRE_NAMES[name] = key
    return key


def _wire_named(connection_values: list[bytes]) -> frozenset[bytes]:
    """The header names the ``Connection`` values (as received) make hop-by-hop beyond the
    standard ones, as bytes: empty for ``keep-alive`` or ``close``."""
    if len(connection_values) != 1:
        return _named_set(connection_values)
    value = connection_values[0]
    if value == b"keep-alive":
        return _NONE_NAMED  # what most upstreams send: compared, not hashed and looked up
    named = _WIRE_NAMED.get(value)
    if named is None:
        named = _named_set(connection_values)
        if len(value) <= _WIRE_NAMED_BYTES and len(_WIRE_NAMED) < _WIRE_NAMED_MAX:
            _WIRE_NAMED[value] = named
    return named


def _named_set(connection_values: list[bytes]) -> frozenset[bytes]:
    """``hop_by_hop_names`` of the values read as latin-1 str, less the standard ones, encoded
    back; a name that is not ASCII cannot match a header name llhttp accepted, so it is left
    out."""
    names = hop_by_hop_names([value.decode("latin-1") for value in connection_values])
    return frozenset(n.encode("latin-1") for n in names - HOP_BY_HOP if n.isascii())


def _keep_alive_timeout(value: str) -> float | None:
    """``timeout=N`` of a ``Keep-Alive`` header (RFC 2068 §19.7.1), if present and sane."""
    for param in value.split(","):
        key, _, num = param.partition("=")
        if key.strip().lower() == "timeout":
            try:
                seconds = float(num.strip())
            except ValueError:
                return None
            return seconds if 0 <= seconds < 86_400 else None
    return None

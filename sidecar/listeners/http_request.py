"""Reading requests off one app connection: llhttp's callbacks and the checks it leaves to us.

:class:`RequestReader` is the input half of
:class:`~sidecar.listeners.http_connection.HttpConnection` (its base class). llhttp (httptools,
strict mode) parses; the reader adds what llhttp leaves to a server (one ``Host``, a well-formed
``Host``, only ``chunked`` as transfer coding, no ``Transfer-Encoding`` on HTTP/1.0, only HTTP/1.0
and 1.1, no CONNECT, http(s) absolute-form only, limits on URI, header bytes, header count and
body), builds each request's :class:`~sidecar.exchange.Exchange` and hands it to ``dispatch``. A
request that breaks a rule stops parsing: ``refuse`` gets its error, and nothing after it is
parsed.

A body that arrives with its head (under ``COLLECT_LIMIT``, the common case) is collected and
the request dispatched with it as ``bytes``; any other is dispatched once its head is read, with
a :class:`~sidecar.listeners.http_body.RequestBody` the reader feeds as the body arrives.

Not here: answering requests, timers and closing (:mod:`sidecar.listeners.http_connection`),
routing (:mod:`sidecar.routing`).
"""

from __future__ import annotations

__all__ = ["COLLECT_LIMIT", "RequestReader"]

import logging
from time import perf_counter
from typing import TYPE_CHECKING, Final, cast

import httptools

from ..errors import BadRequest, BodyTooLarge, HeadersTooLarge, SidecarError, UriTooLong
from ..exchange import Exchange, Headers
from ..flow_control import BODY_WAITING, FlowControl
from ..http1 import (
    HOP_BY_HOP,
    NAME_MAX_BYTES,
    NamesByPlace,
    hop_by_hop_names,
    parse_absolute_target,
    split_origin_target,
    valid_host,
)
from .http_body import RequestBody
from .http_state import BUSY, HEAD, IDLE, INPUT_CLOSED, ConnectionState

if TYPE_CHECKING:
    from .http import HttpListener

log = logging.getLogger("sidecar.listener")

#: A body smaller than this that arrives with its head is collected and sent in one write.
COLLECT_LIMIT: Final = 64 * 1024

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
#: request methods as llhttp reports them (bytes) → ``str``, filled as they are seen.
_METHODS: Final[dict[bytes, str]] = {}
#: header names as received → as read (latin-1, lower-case), filled as they are seen: an app
#: sends the same few names on every request, so each is decoded once and its str, whose hash
#: is then computed once too, shared. Bounded in entries and in each name's length.
_NAMES: Final[dict[bytes, str]] = {}
_NAMES_MAX: Final = 512


#: the header lines kept by place for the next request (see ``RequestReader.values``): the first
#: few, short ones (an app's usual headers), not what a hostile app could make each idle
#: connection hold
_KEPT_PLACES: Final = 16
_KEPT_VALUE_BYTES: Final = 64
#: the longest request target an app connection keeps read for its next request
_KEPT_TARGET_BYTES: Final = 256
#: what a header name is to the request's checks, found once per name and place (``on_header``)
_PLAIN: Final = 0
_HOST: Final = 1
_HOP: Final = 2


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the reason is in ``conn.error``."""


class RequestReader(FlowControl):
    """The input half of an app connection; the connection answers what it dispatches
    (``dispatch``) and refuses what breaks a rule (``refuse``)."""

    def __init__(self, listener: HttpListener) -> None:
        super().__init__()
        cfg = listener.cfg
        self.listener = listener
        self.max_header_bytes = cfg.max_header_bytes
        self.max_headers = cfg.max_headers
        self.max_uri_bytes = cfg.max_uri_bytes
        self.max_body = cfg.max_request_body
        self.parser = httptools.HttpRequestParser(self)
        #: the app's address, ``"ip:port"`` (set once connected).
        self.client = ""
        self.state: ConnectionState = IDLE
        #: listener time the current state began (the ticker's clock, a second coarse at most).
        self.since = 0.0
        #: no more bytes are parsed: refused, past the last request, or closing.
        self.input_closed = False
        #: the request being parsed is the last one (``Connection: close``, HTTP/1.0).
        self.last_request = False
        #: why a parser callback stopped parsing (``_Refused``).
        self.error: SidecarError | None = None
        # the request being parsed: its target, headers and their size so far
        self.url = b""
        #: the end-to-end headers as read (``Host`` among them), and apart the hop-by-hop ones
        self.hdrs: list[tuple[str, str]] = []
        self.hop: list[tuple[str, str]] = []
        #: the ``Host`` lines read, and the last one's value
        self.hosts = 0
        self.host: str | None = None
        #: the header names of the last request, by place: each read, and what it is
        #: (``_PLAIN``, ``_HOST``, ``_HOP``)
        self.names: NamesByPlace[tuple[str, int]] = NamesByPlace()
        #: the header values of the last request, by place, as received, and the pairs read
        #: from them: an app sends the same values call after call, and a pair is immutable
        self.values: list[bytes] = []
        #: (typed as tuples of any length: compiled, a pair typed ``tuple[str, str]`` is unpacked
        #: as it is read and packed into a new tuple as it is appended, a copy per header)
        self.pairs: list[tuple[str, ...]] = []
        #: the last origin-form request target (a short one) and its path and query; at first
        #: one no request has (a target holds no line feed)
        self.last_url = b"\n"
        self.last_target_path = ""
        self.last_target_query = ""
        #: the last request's method, as llhttp gave it and as read
        self.last_raw_method = b""
        self.last_method = ""
        self.hdr_bytes = 0
        #: raw bytes of a head still incomplete, which llhttp may hold before any callback.
        self.head_pending = 0
        self.in_head = False
        self.mid_message = False
        #: requests begun during the current ``data_received`` (for ``head_pending``).
        self.begun = 0
        self.expect_continue = False
        #: a request whose body is being collected (``parts``) before it is dispatched.
        self.cur: Exchange | None = None
        self.parts: list[bytes] | None = None
        self.parts_size = 0
        self.body_received = 0
        #: the body of a dispatched request, fed as it arrives.
        self.stream: RequestBody | None = None
        #: the dispatched request whose body is still arriving from the app.
        self.body_incomplete: Exchange | None = None
        #: absolute-form requests (routed by their authority only); usually ``None``.
        self.absolute_form: set[Exchange] | None = None
        #: the last ``Host`` value found well-formed (checked once per connection, not per call).
        self.valid_host: str | None = None

    def dispatch(self, ex: Exchange) -> None:
        """Answer ``ex`` after the requests dispatched before it (the connection does)."""
        raise NotImplementedError

    def refuse(self, error: SidecarError) -> None:
        """Answer a malformed request with ``error``, then close (the connection does)."""
        raise NotImplementedError

    # --- bytes in ----------------------------------------------------------------------------

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
        # at a request's first byte: its head's timeout runs from here, a pipelined request's
        # first bytes included (begun only at its target, a request cut inside its method
        # would wait out the idle timeout instead)
        if self.listener.draining:
            # a request that starts once the drain began (a keep-alive race on an idle
            # connection) is answered, and is the last one on this connection
            self.last_request = True
        self.url = b""
        self.hdrs = []
        self.hop.clear()  # read in build_exchange and nowhere else: one list reused
        self.hosts = 0
        self.host = None
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
        # the lists as lists of tuples of any length: a kept pair is appended itself (``pairs``)
        hdrs = cast(list[tuple[str, ...]], self.hdrs)
        hop = cast(list[tuple[str, ...]], self.hop)
        at = len(hdrs) + len(hop)
        if at >= self.max_headers:
            self.error = HeadersTooLarge(f"more than {self.max_headers} request headers")
            raise _Refused
        read = self.names.get(at, name)
        values = self.values
        pair: tuple[str, ...]
        if read is None:
            known = _NAMES.get(name)
            key = known if known is not None else _name_of(name)
            kind = _HOST if key == "host" else _HOP if key in HOP_BY_HOP else _PLAIN
            read = (key, kind)
            self.names.put(at, name, read)
            pair = self._pair(at, read[0], value)
        elif at < len(values) and values[at] == value:
            # the same value as the last request's here, and (the pair says) the same name
            kept = self.pairs[at]
            pair = kept if kept[0] is read[0] else self._pair(at, read[0], value)
        else:
            pair = self._pair(at, read[0], value)
        kind = read[1]
        if kind == _PLAIN:
            hdrs.append(pair)
        elif kind == _HOST:
            hdrs.append(pair)
            self.hosts += 1
            self.host = pair[1]
        else:
            hop.append(pair)

    def _pair(self, at: int, key: str, value: bytes) -> tuple[str, ...]:
        """The pair of a header line, kept for the next request when short and early."""
        pair: tuple[str, ...] = (key, value.decode("latin-1"))
        values = self.values
        if at < len(values):
            if len(value) <= _KEPT_VALUE_BYTES:
                values[at] = value
                self.pairs[at] = pair
            else:
                values[at] = b"\x00"  # no value llhttp accepts: this place keeps nothing
        elif at == len(values) and at < _KEPT_PLACES and len(value) <= _KEPT_VALUE_BYTES:
            values.append(value)
            self.pairs.append(pair)
        return pair

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
            self.pause_reading(INPUT_CLOSED)
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
        """The checks llhttp leaves to us, then the protocol-neutral :class:`Exchange`.

        One function on purpose: it runs for every request, and each call it made of its steps
        would cost every request that call. What only some requests meet (a method seen for the
        first time, ``Expect``, a new ``Host``, a refusal's reason) is in the helpers below it.
        """
        p = self.parser
        keep_alive = p.should_keep_alive()
        raw_method = p.get_method()
        if raw_method == self.last_raw_method:  # the method of the last request: no lookup
            method = self.last_method
        else:
            method = _METHODS.get(raw_method) or _method_name(raw_method)
            self.last_raw_method = raw_method
            self.last_method = method
        hdrs = self.hdrs
        host = self.host
        hosts = self.hosts
        connection: list[str] | None = None
        content_length: str | None = None
        te: str | None = None
        expects: list[str] | None = None
        # the hop-by-hop headers, sorted out as they came (``on_header``)
        for name, value in self.hop:
            if name == "connection":
                if connection is None:
                    connection = []
                connection.append(value)
            elif name == "content-length":
                content_length = value
            elif name == "transfer-encoding":
                # several lines are one comma-joined list (RFC 9110 §5.3): judge all of them,
                # or "gzip" then "chunked" would pass where "gzip, chunked" is refused
                te = value if te is None else f"{te}, {value}"
            elif name == "expect":
                if expects is None:
                    expects = []
                expects.append(value)
        # llhttp keeps an HTTP/1.1 connection alive unless told to close, and accepts no other
        # 1.x with a minor version (1.2 is refused): kept alive with no Connection header, the
        # version is 1.1 without asking httptools, whose answer is a str.format per request
        version = "1.1" if keep_alive and not connection else p.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadRequest(f"HTTP/{version} is not supported")
        if expects is not None:
            for value in expects:
                self.expect_continue = _expects_continue(value, version)
        if hosts != 1:
            if hosts or version == "1.1":  # only an HTTP/1.0 request may come without one
                raise BadRequest(_host_count_problem(hosts))
        else:
            if host != self.valid_host:  # an app sends the same Host on every request
                self.valid_host = _checked_host(host)
            # the same value, as the str routing has seen before (its hash already computed)
            host = self.valid_host
        if te is not None and (version == "1.0" or te.strip().lower() != "chunked"):
            raise BadRequest(_transfer_coding_problem(te, version))
        if (te is not None or content_length not in (None, "0")) and p.should_upgrade():
            # llhttp stops at an Upgrade request's head, so its body could not be read
            raise BadRequest("a request body together with Upgrade is not supported")
        url = self.url
        absolute = False
        if url == self.last_url:  # an app calls the same target again: read once
            path = self.last_target_path
            query = self.last_target_query
        elif url[:1] == b"/":
            path, query = split_origin_target(url.decode("latin-1"))
            if len(url) <= _KEPT_TARGET_BYTES:
                self.last_url = url
                self.last_target_path = path
                self.last_target_query = query
        elif url == b"*":
            raise BadRequest("the '*' request target is not supported")
        else:
            host, path, query = parse_absolute_target(url)
            absolute = True
        if connection:
            # the headers Connection names (it is hop-by-hop itself, left out as it came)
            drop = hop_by_hop_names(connection)
            if len(drop) > len(HOP_BY_HOP):  # names beyond the standard ones, left out already
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
        if not keep_alive:
            ex.keep_alive = False
            self.last_request = True
        return ex

    def start_stream(self, ex: Exchange) -> None:
        """Dispatch ``ex`` before its body is complete: the body streams as it arrives."""
        assert self.parts is not None
        stream = self.stream = RequestBody(self, self.parts, self.expect_continue)
        ex.body = stream
        self.body_incomplete = ex
        self.cur = None
        self.parts = None
        self.dispatch(ex)

    # --- what a RequestBody asks of its connection (``BodySource``) --------------------------

    # methods, not ``pause_body = FlowControl.pause_reading``: a compiled class holds such an
    # alias as a plain function, which an instance then calls without ``self``
    def pause_body(self) -> None:
        self.pause_reading(BODY_WAITING)

    def resume_body(self) -> None:
        self.resume_reading(BODY_WAITING)

    def send_continue(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush_writes()  # the responses before it go first
            self.transport.write(_CONTINUE)


def _name_of(name: bytes) -> str:
    """A header name as read, kept for the next request if the table has room."""
    key = name.decode("latin-1").lower()
    if len(name) <= NAME_MAX_BYTES and len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = key
    return key


def _method_name(raw: bytes) -> str:
    """A method llhttp parsed, as ``str``, the first time it is seen (CONNECT is refused)."""
    method = raw.decode("ascii")
    if method == "CONNECT":
        raise BadRequest("CONNECT is not supported: call http://127.0.0.1:PORT/<upstream>/...")
    # llhttp accepts only the methods it knows: this stays a few dozen entries
    _METHODS[raw] = method
    return method


def _expects_continue(value: str, version: str) -> bool:
    """Whether an ``Expect`` value asks for ``100 Continue``; any other expectation is refused."""
    if value.lower() != "100-continue":
        raise BadRequest(f"unsupported Expect: {value}")
    # an HTTP/1.0 client cannot expect 100 Continue (RFC 9110 §10.1.1)
    return version == "1.1"


def _host_count_problem(hosts: int) -> str:
    return "more than one Host header" if hosts else "HTTP/1.1 request without a Host header"


def _checked_host(host: str | None) -> str:
    """A ``Host`` value not seen on this connection yet, once found well-formed."""
    if host is None or not valid_host(host):
        raise BadRequest("malformed Host header")
    return host


def _transfer_coding_problem(te: str, version: str) -> str:
    # llhttp refuses most bad codings; "gzip, chunked" it lets through, and a 1.0 request with
    # Transfer-Encoding has faulty framing (RFC 9112 §6.1)
    if version == "1.0":
        return "Transfer-Encoding in an HTTP/1.0 request"
    return f"unsupported Transfer-Encoding: {te}"

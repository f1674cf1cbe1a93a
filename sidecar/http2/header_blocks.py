"""What a received header block means (RFC 9113 section 8.1): a request opening a stream
(server), a response or a 1xx (client), or trailers ending one; decoded with HPACK and, when
asked, checked by :mod:`.header_rules`.

A block is always decoded, even on a stream about to be refused or already reset, since the
HPACK table is the connection's. A malformed block or one on a half-closed stream is a stream
error; one the decoder refuses is a connection error (COMPRESSION_ERROR), except a request whose
header list is over our size: the decoder read it whole, so that stream is opened and reported
(``RequestTooLarge``) for the caller to refuse, and the connection goes on; any other block over
it ends the connection (ENHANCE_YOUR_CALM). Not here: the frames that carry blocks
(:mod:`.inbound`).
"""

from __future__ import annotations

from . import frames as f
from .errors import DenialOfServiceError, ProtocolError
from .events import (
    Event,
    InformationalResponseReceived,
    RequestReceived,
    RequestTooLarge,
    ResponseReceived,
    TrailersReceived,
)
from .header_rules import check_request, check_response, check_trailers
from .hpack_errors import HPACKError, OversizedHeaderListError
from .state import Http2ConnectionState
from .streams import CLOSED_BY_END, CLOSED_BY_RESET_RECEIVED, CLOSED_BY_RESET_SENT, Stream

Headers = list[tuple[bytes, bytes]]


class HeaderBlockReceiver(Http2ConnectionState):
    """Turns each whole header block into its event and stream state."""

    def header_block(self, sid: int, block: bytes, end_stream: bool, events: list[Event]) -> None:
        try:
            headers = self.decoder.decode(block)
        except OversizedHeaderListError as error:
            # a request's: that call is refused and the connection goes on (the decoder read
            # the whole block); any other block over the limit ends the connection
            if self.client_side or not self.may_open(sid):
                raise DenialOfServiceError("header list over its size limit") from error
            self.oversized_request(sid, error, end_stream, events)
            return
        except HPACKError as error:
            raise ProtocolError("undecodable header block", f.COMPRESSION_ERROR) from error
        stream = self.streams.get(sid)
        if stream is not None:
            if stream.recv_closed:
                self.stream_error(sid, f.STREAM_CLOSED, events)
            elif stream.head_received:
                self.trailers(stream, headers, end_stream, events)
            elif self.client_side:
                self.response(stream, headers, end_stream, events)
            else:
                self.stream_error(sid, f.PROTOCOL_ERROR, events)  # cannot happen: sent by us
        elif self.client_side or not self.may_open(sid):
            self.not_a_new_stream(sid, events)
        else:
            self.request(sid, headers, end_stream, events)

    def not_a_new_stream(self, sid: int, events: list[Event]) -> None:
        """A block on a stream that is not open and cannot be opened by the peer."""
        if self.is_idle(sid):
            raise ProtocolError("HEADERS on a stream the peer cannot open")
        how = self.recently_closed.get(sid, -1)
        if how == CLOSED_BY_RESET_SENT:
            return  # we reset it: what was on its way is dropped
        if how == CLOSED_BY_RESET_RECEIVED:
            self.stream_error(sid, f.STREAM_CLOSED, events)
        elif how == CLOSED_BY_END:
            raise ProtocolError("HEADERS on a closed stream", f.STREAM_CLOSED)
        else:
            raise ProtocolError("HEADERS reusing a stream id")

    def admits(self, sid: int) -> bool:
        """Whether a new stream ``sid`` fits: below a GOAWAY's last id and the concurrency."""
        return (
            sid <= self.accept_up_to
            and self.open_inbound_streams < self.local_max_concurrent_streams
        )

    def open_inbound(self, sid: int) -> Stream:
        """Open the peer's new stream ``sid`` (which :meth:`admits`) with its head received."""
        stream = Stream(sid, False, self.remote_initial_window_size, self.local_initial_window_size)
        stream.head_received = True
        self.streams[sid] = stream
        self.open_inbound_streams += 1
        return stream

    def may_open(self, sid: int) -> bool:
        """Whether a block on ``sid`` would be a new stream from the peer (a request)."""
        return (
            sid not in self.streams
            and (sid & 1) == self.peer_parity
            and sid > self.highest_inbound_stream_id
        )

    def oversized_request(
        self, sid: int, error: OversizedHeaderListError, end_stream: bool, events: list[Event]
    ) -> None:
        """A new stream whose header list is over the limit: opened as any request is (or
        refused, past the concurrency), for the caller to answer."""
        self.highest_inbound_stream_id = sid
        if not self.admits(sid):
            self.stream_error(sid, f.REFUSED_STREAM, events)
            return
        stream = self.open_inbound(sid)
        path = b""
        for name, value in error.headers:
            if name == b":path":
                path = value
                break
        events.append(RequestTooLarge(sid, error.size, path, end_stream))
        if end_stream:
            self.remote_ended(stream, events)

    def request(self, sid: int, headers: Headers, end_stream: bool, events: list[Event]) -> None:
        """A new stream from the peer (a server's request)."""
        self.highest_inbound_stream_id = sid
        if not self.admits(sid):
            self.stream_error(sid, f.REFUSED_STREAM, events)
            return
        if self.validate_inbound_headers and check_request(headers):
            self.stream_error(sid, f.PROTOCOL_ERROR, events)
            return
        stream = self.open_inbound(sid)
        events.append(RequestReceived(sid, headers, end_stream))
        if end_stream:
            self.remote_ended(stream, events)

    def response(
        self, stream: Stream, headers: Headers, end_stream: bool, events: list[Event]
    ) -> None:
        """A client's first block(s) on a stream: 1xx ones, then the final response."""
        sid = stream.stream_id
        if self.validate_inbound_headers and check_response(headers):
            self.stream_error(sid, f.PROTOCOL_ERROR, events)
            return
        if informational(headers):
            if end_stream:
                self.stream_error(sid, f.PROTOCOL_ERROR, events)
            else:
                events.append(InformationalResponseReceived(sid, headers))
            return
        stream.head_received = True
        events.append(ResponseReceived(sid, headers, end_stream))
        if end_stream:
            self.remote_ended(stream, events)

    def trailers(
        self, stream: Stream, headers: Headers, end_stream: bool, events: list[Event]
    ) -> None:
        """A block after the request or final response: trailers, which end the stream."""
        sid = stream.stream_id
        if not end_stream or (self.validate_inbound_headers and check_trailers(headers)):
            self.stream_error(sid, f.PROTOCOL_ERROR, events)
            return
        events.append(TrailersReceived(sid, headers))
        self.remote_ended(stream, events)


def informational(headers: Headers) -> bool:
    """Whether a response's ``:status`` is 1xx."""
    for name, value in headers:
        if name == b":status":
            return value[:1] == b"1"
    return False

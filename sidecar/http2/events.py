"""What :meth:`~.connection.Connection.receive_data` reports: one event class per thing the peer
did, with typed attributes (compiled, so built cheaply per frame).

Events that end the peer's side of a stream are followed by :class:`StreamEnded`, as ``h2``
does, so a caller can handle the end in one place. Not here: the frames behind them
(:mod:`.frames`), the state machine (:mod:`.connection`).
"""

from __future__ import annotations

__all__ = [
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "InformationalResponseReceived",
    "PingAckReceived",
    "PingReceived",
    "RemoteSettingsChanged",
    "RequestReceived",
    "RequestTooLarge",
    "ResponseReceived",
    "SettingsAcknowledged",
    "StreamEnded",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
]

Headers = list[tuple[bytes, bytes]]


class Event:
    """Base of every event (an ``isinstance`` check narrows to a subclass)."""


class RequestReceived(Event):
    """A server got a request's headers: a new stream."""

    def __init__(self, stream_id: int, headers: Headers, stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = stream_ended


class RequestTooLarge(Event):
    """A server got a request whose header list is over the size it allows: a new stream,
    open, to be refused. ``size`` is the list's (RFC 9113 6.5.2), ``path`` its ``:path`` when
    that came within the limit (else empty)."""

    def __init__(self, stream_id: int, size: int, path: bytes, stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.size = size
        self.path = path
        self.stream_ended = stream_ended


class ResponseReceived(Event):
    """A client got a final (non-1xx) response's headers."""

    def __init__(self, stream_id: int, headers: Headers, stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = stream_ended


class InformationalResponseReceived(Event):
    """A client got a 1xx response; the final one follows."""

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers


class TrailersReceived(Event):
    """Trailers ended the peer's side of a stream (a StreamEnded follows)."""

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers


class DataReceived(Event):
    """A DATA frame's data. ``flow_controlled_length`` (padding included) is what to hand back
    to :meth:`~.connection.Connection.acknowledge_received_data` once consumed."""

    def __init__(
        self, stream_id: int, data: bytes, flow_controlled_length: int, stream_ended: bool
    ) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length
        self.stream_ended = stream_ended


class StreamEnded(Event):
    """The peer will send nothing more on the stream (END_STREAM)."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(Event):
    """The stream was reset: by the peer (``remote_reset``), or by us because the peer broke
    the protocol on it (the caller cancels the call either way)."""

    def __init__(self, stream_id: int, error_code: int, remote_reset: bool) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote_reset = remote_reset


class WindowUpdated(Event):
    """The peer opened a send window: the stream's, or the connection's (``stream_id`` 0)."""

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged(Event):
    """The peer's SETTINGS, applied and acknowledged: the known settings it carried."""

    def __init__(self, changed: dict[int, int]) -> None:
        self.changed = changed


class SettingsAcknowledged(Event):
    """The peer acknowledged our oldest pending SETTINGS, now in effect."""


class PingReceived(Event):
    """The peer's PING (already answered)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class PingAckReceived(Event):
    """The answer to one of our PINGs."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class ConnectionTerminated(Event):
    """The peer sent GOAWAY: streams above ``last_stream_id`` were not processed."""

    def __init__(self, error_code: int, last_stream_id: int, additional_data: bytes) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data

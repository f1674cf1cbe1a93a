"""Exceptions of the HTTP/2 core: what :class:`~.connection.Connection` raises, each carrying
the HTTP/2 error code it stands for.

A connection error found in received bytes is raised after the GOAWAY with its code was
queued; a misuse of the sending API (a closed stream, a frame too large, no window) is raised
before anything is queued. Stream errors found in received bytes are not raised: they become
RST_STREAM and a :class:`~.events.StreamReset` event. Not compiled: callers may subclass these.
"""

from __future__ import annotations

__all__ = [
    "DenialOfServiceError",
    "FlowControlError",
    "FrameSizeError",
    "FrameTooLargeError",
    "ProtocolError",
    "StreamClosedError",
    "TooManyStreamsError",
]

from .frames import (
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
)


class ProtocolError(Exception):
    """The peer, or the caller, broke RFC 9113; ``error_code`` is the code a GOAWAY carries."""

    default_code = PROTOCOL_ERROR

    def __init__(self, message: str = "", error_code: int | None = None) -> None:
        super().__init__(message)
        self.error_code: int = self.default_code if error_code is None else error_code


class FlowControlError(ProtocolError):
    """More was sent than a flow-control window allows, or a window would pass 2**31-1."""

    default_code = FLOW_CONTROL_ERROR


class FrameSizeError(ProtocolError):
    """A received frame's length is wrong for its type or over our SETTINGS_MAX_FRAME_SIZE."""

    default_code = FRAME_SIZE_ERROR


class FrameTooLargeError(FrameSizeError):
    """The caller asked to send a DATA frame over the peer's SETTINGS_MAX_FRAME_SIZE."""


class StreamClosedError(ProtocolError):
    """The caller sent on a stream that is closed (or never opened) for sending."""

    default_code = STREAM_CLOSED

    def __init__(self, stream_id: int, message: str = "") -> None:
        super().__init__(message or f"stream {stream_id} is closed")
        self.stream_id = stream_id


class DenialOfServiceError(ProtocolError):
    """The peer sent a header block past the bounds we keep: GOAWAY ENHANCE_YOUR_CALM."""

    default_code = ENHANCE_YOUR_CALM


class TooManyStreamsError(ProtocolError):
    """The caller opened more streams than the peer's SETTINGS_MAX_CONCURRENT_STREAMS."""

    default_code = REFUSED_STREAM

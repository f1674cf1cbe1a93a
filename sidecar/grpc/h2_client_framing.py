"""gRPC over HTTP/2 as the sidecar's own client writes and reads it: pure functions and one
deframer, no I/O (the connection is :mod:`.h2_client_connection`, the call
:mod:`.h2_upstream_call`).

- a request message gets gRPC's 5-byte prefix (:func:`frame_message`: flag 0, length);
- a response's DATA is cut back into whole messages by :class:`MessageReader`, which checks each
  prefix as it arrives: a compressed message is refused (the client sends
  ``grpc-accept-encoding: identity``, so a server that compresses anyway broke the protocol) and
  one over ``max_receive_message_size`` is refused before its bytes are buffered;
- ``grpc-timeout`` is written rounded **down** to whole milliseconds (less
  :data:`SEND_MARGIN_MS`), so the upstream's deadline is never later than the call's;
- the response's HEADERS and trailers become the chain's metadata and trailers
  (:func:`response_metadata_of`, :func:`trailers_of`): ``grpc-message`` percent-decoded,
  ``-bin`` values padded base64, transport fields dropped; a non-200 ``:status`` becomes the gRPC
  code the gRPC spec maps it to (:func:`code_of_http_status`).

Not here: flow control (the reader only counts; the call acknowledges as the app reads).
"""

from __future__ import annotations

__all__ = [
    "SEND_MARGIN_MS",
    "FramingError",
    "MessageReader",
    "code_of_http_status",
    "frame_message",
    "grpc_timeout",
    "percent_decode",
    "response_metadata_of",
    "retime",
    "trailers_of",
]

from collections import deque
from urllib.parse import unquote_to_bytes

from ..exchange import Headers
from .wire import RESERVED

#: milliseconds taken off what is left of the deadline for the time until the headers leave.
SEND_MARGIN_MS = 1
#: ``grpc-timeout`` carries at most 8 digits.
_MAX_MS = 99_999_999
_RESERVED_B = frozenset(name.encode() for name in RESERVED)
#: what a trailers block keeps apart from the metadata (the status is read, not copied).
_NOT_TRAILING_B = _RESERVED_B - {b"grpc-status-details-bin"}
#: HTTP status to gRPC code, as gRPC's "HTTP to gRPC Status Code Mapping" says.
_HTTP_CODES = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


class FramingError(Exception):
    """A response message the client refuses; ``code`` is the gRPC status it ends the call
    with, ``reason`` the sidecar's ``x-sidecar-error``."""

    def __init__(self, code: int, reason: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.reason = reason
        self.details = details


def frame_message(message: bytes) -> bytes:
    """``message`` with gRPC's prefix: not compressed, its length (big-endian, 4 bytes)."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class MessageReader:
    """Whole messages out of a response's DATA, in order; at most one message in the making."""

    __slots__ = ("_buf", "_need", "limit", "messages")

    def __init__(self, limit: int) -> None:
        #: largest message accepted (``max_receive_message_size``).
        self.limit = limit
        self.messages: deque[bytes] = deque()
        self._buf = bytearray()
        #: the length of the message being read, ``-1`` while its prefix is not complete.
        self._need = -1

    @property
    def partial(self) -> bool:
        """Bytes of a message are held that do not make a whole one yet."""
        return bool(self._buf)

    def feed(self, data: bytes) -> None:
        """Take the bytes of one DATA frame; raises :class:`FramingError` for a message the
        client refuses (nothing more can be read from the stream after it)."""
        if not self._buf and len(data) >= 5 and data[0] == 0:
            # the common case: frames that hold whole messages
            size = int.from_bytes(data[1:5], "big")
            if size + 5 == len(data):
                if size > self.limit:
                    raise self._too_large(size)
                self.messages.append(data[5:])
                return
        buf = self._buf
        buf += data
        while True:
            need = self._need
            if need < 0:
                if len(buf) < 5:
                    return
                if buf[0] != 0:
                    raise FramingError(
                        13,
                        "upstream_protocol",
                        "a compressed message, though the call accepts no grpc-encoding"
                        if buf[0] == 1
                        else f"a message prefix with the flag {buf[0]}",
                    )
                need = self._need = int.from_bytes(buf[1:5], "big")
                if need > self.limit:
                    raise self._too_large(need)
            if len(buf) < need + 5:
                return
            self.messages.append(bytes(buf[5 : need + 5]))
            del buf[: need + 5]
            self._need = -1

    def _too_large(self, size: int) -> FramingError:
        return FramingError(
            8,
            "body_too_large",
            f"a response message of {size} bytes is larger than max_receive_message_size "
            f"({self.limit})",
        )


def grpc_timeout(remaining: float) -> bytes | None:
    """The ``grpc-timeout`` value for a call with ``remaining`` seconds left, less a millisecond,
    rounded down onto the grid gRPC clients round their own timeouts up onto (whole ms below
    1 s, 10 ms below 10 s, 100 ms below 100 s, whole seconds above); ``None`` when too little
    is left to send a call at all (under ~2 ms).

    Why the grid: the app's deadline reached the sidecar as its client's ``grpc-timeout``,
    rounded up onto that grid and counted from when the sidecar received it, so what is left
    here may be up to a step more than the app has; rounding down by a step keeps the
    upstream's deadline from landing after the app's, hop after hop."""
    ms = int(remaining * 1000) - SEND_MARGIN_MS  # int(): rounded down
    if ms < 1:
        return None
    ms -= ms % _grid_ms(ms)
    if ms > _MAX_MS:
        return b"%dS" % min(ms // 1000, _MAX_MS)
    return b"%dm" % ms


def _grid_ms(ms: int) -> int:
    """The step of ``grpc-timeout``'s grid for ``ms`` milliseconds (three significant digits,
    then whole seconds and their tens...), as gRPC clients encode it."""
    if ms < 1_000:
        return 1
    if ms < 10_000:
        return 10
    if ms < 100_000:
        return 100
    if ms < 1_000_000:
        return 1_000
    if ms < 10_000_000:
        return 10_000
    return 100_000


def retime(headers: list[tuple[bytes, bytes]], remaining: float) -> bool:
    """Set the ``grpc-timeout`` of a call's HEADERS (if any) to ``remaining`` seconds, for a
    call that waited before it was sent; ``False`` when too little is left to send it."""
    for i, (key, _) in enumerate(headers):
        if key == b"grpc-timeout":
            value = grpc_timeout(remaining)
            if value is None:
                return False
            headers[i] = (key, value)
            break
    return True


def percent_decode(value: bytes) -> str:
    """``grpc-message`` as sent (percent-encoded UTF-8) as text; bad UTF-8 is replaced."""
    if b"%" not in value:
        return value.decode("utf-8", "replace")
    return unquote_to_bytes(value).decode("utf-8", "replace")


def code_of_http_status(status: int) -> int:
    """The gRPC code of an HTTP answer that is not gRPC's (``:status`` other than 200)."""
    return _HTTP_CODES.get(status, 2)


def _text(key: bytes, value: bytes) -> tuple[str, str]:
    name = key.decode("latin-1")
    text = value.decode("latin-1")
    if name[-4:] == "-bin":
        text = text.rstrip("=")
        text += "=" * (-len(text) % 4)  # padded base64, as the chain carries it
    return name, text


def response_metadata_of(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The initial metadata of a response's HEADERS, as the chain carries it."""
    return [_text(k, v) for k, v in headers if k[:1] != b":" and k not in _RESERVED_B]


def trailers_of(headers: list[tuple[bytes, bytes]]) -> Headers:
    """A trailers block (or a trailers-only HEADERS) as the chain's trailers: ``grpc-status``
    (UNKNOWN when missing or malformed, as gRPC clients read it), ``grpc-message`` decoded,
    then the trailing metadata."""
    code = "2"
    details = ""
    trailing: list[tuple[str, str]] = []
    for key, value in headers:
        if key == b"grpc-status":
            code = (
                value.decode() if value.isdigit() and len(value) < 3 and int(value) <= 16 else "2"
            )
        elif key == b"grpc-message":
            details = percent_decode(value)
        elif key[:1] != b":" and key not in _NOT_TRAILING_B:
            trailing.append(_text(key, value))
    items = [("grpc-status", code)]
    if details:
        items.append(("grpc-message", details))
    items += trailing
    return Headers.wrap(items)

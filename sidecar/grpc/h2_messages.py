"""gRPC over HTTP/2 as the frame-level listener reads and writes it: request headers into the
chain's metadata, ``grpc-timeout``, the trailers block, ``grpc-message`` percent-encoding.

These are pure functions on the header bytes the HTTP/2 state machine hands over, so the
listener decodes only what the chain needs. The encoding of metadata in the chain is
:mod:`sidecar.grpc.wire`'s: ``-bin`` values base64 (padded), reserved names dropped.

Not here: the connection and its streams (:mod:`.h2_connection`), the calls (:mod:`.h2_listener`).
"""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPE",
    "RequestHead",
    "names_encoding",
    "parse_timeout",
    "percent_encode",
    "read_request",
    "response_head",
    "trailers_block",
]

from ..exchange import Headers
from .metadata import split_status
from .wire import RESERVED, encode_bin

CONTENT_TYPE = b"application/grpc"
_RESERVED_B = frozenset(name.encode() for name in RESERVED)
_STATUS_200 = (b":status", b"200")
_CT = (b"content-type", CONTENT_TYPE)
#: seconds per ``grpc-timeout`` unit (gRPC over HTTP/2: Hours, Minutes, Seconds, milli, micro,
#: nano).
_UNITS = {72: 3600.0, 77: 60.0, 83: 1.0, 109: 1e-3, 117: 1e-6, 110: 1e-9}


class RequestHead:
    """What a call's HEADERS say, decoded once (``__slots__``: one per call)."""

    __slots__ = ("authority", "content_type", "encoding", "metadata", "path", "timeout")

    def __init__(self) -> None:
        self.path = ""
        self.authority: str | None = None
        self.content_type = b""
        self.encoding = b""
        self.timeout: float | None = None
        self.metadata: list[tuple[str, str]] = []


def read_request(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    """The call's method path, authority, content type, encoding, timeout and metadata (as the
    chain carries it). A ``grpc-timeout`` that does not parse is ignored, as gRPC servers do."""
    head = RequestHead()
    meta = head.metadata
    for key, value in headers:
        if key[:1] == b":":
            if key == b":path":
                head.path = value.decode("latin-1")
            elif key == b":authority":
                head.authority = value.decode("latin-1") or None
        elif key in _RESERVED_B:
            if key == b"content-type":
                head.content_type = value
            elif key == b"grpc-timeout":
                head.timeout = parse_timeout(value)
            elif key == b"grpc-encoding":
                head.encoding = value
            elif key == b"host" and head.authority is None:
                head.authority = value.decode("latin-1") or None
        else:
            name = key.decode("latin-1")
            text = value.decode("latin-1")
            if name[-4:] == "-bin":
                text = text.rstrip("=")
                text += "=" * (-len(text) % 4)  # padded base64, as encode_bin writes it
            meta.append((name, text))
    return head


def parse_timeout(value: bytes) -> float | None:
    """Seconds of a ``grpc-timeout`` value (``100m``: 0.1), ``None`` when it is malformed."""
    if not 2 <= len(value) <= 9:
        return None
    digits = value[:-1]
    unit = _UNITS.get(value[-1])
    if unit is None or not digits.isdigit():
        return None
    return int(digits) * unit


def percent_encode(message: str) -> bytes:
    """``grpc-message`` as the gRPC spec sends it: UTF-8, with ``%`` and bytes outside
    printable ASCII percent-encoded."""
    raw = message.encode("utf-8", "replace")
    if raw.isascii() and "%" not in message and message.isprintable():
        return raw
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def _metadata_block(pairs: tuple[tuple[str, str | bytes], ...]) -> list[tuple[bytes, bytes]]:
    return [
        (k.encode(), v.encode() if isinstance(v, str) else encode_bin(v).encode()) for k, v in pairs
    ]


def response_head(initial: tuple[tuple[str, str | bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The response's HEADERS: status 200, the gRPC content type, the initial metadata."""
    if not initial:
        return [_STATUS_200, _CT]
    return [_STATUS_200, _CT, *_metadata_block(initial)]


def trailers_block(trailers: Headers, *, only: bool) -> list[tuple[bytes, bytes]]:
    """The trailers (``only``: a trailers-only answer, which carries ``:status`` and the
    content type too): status code, percent-encoded details, trailing metadata."""
    code, details, trailing = split_status(trailers)
    block = [_STATUS_200, _CT] if only else []
    block.append((b"grpc-status", str(code).encode()))
    if details:
        block.append((b"grpc-message", percent_encode(details)))
    if trailing:
        block += _metadata_block(trailing)
    return block


def names_encoding(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request's HEADERS name a ``grpc-encoding`` other than identity (its messages
    may then carry the compressed flag, and the call is refused for the encoding)."""
    for key, value in headers:
        if key == b"grpc-encoding":
            return value != b"identity"
    return False

"""Whether a decoded header list is a valid HTTP/2 message head (RFC 9113 8.2 and 8.3).

What it is: three pure functions, one per kind of header block (request, response, trailers),
each returning ``None`` for a valid list or a short constant reason for the first rule broken;
the caller resets the stream with PROTOCOL_ERROR (RFC 9113 8.1.1). They allocate nothing on a
valid list and read each name and value once.
What it is not: HPACK decoding (:mod:`hpack`), nor any meaning of the fields (gRPC's ``te``
requirement, content-type): the front checks what its protocol needs on top of these.

Not supported on purpose: extended CONNECT (RFC 8441's ``:protocol`` is an unknown pseudo-header).
"""

from __future__ import annotations

__all__ = [
    "CONNECTION_SPECIFIC",
    "USUAL_NAMES",
    "check_request",
    "check_response",
    "check_trailers",
]

from typing import Final

from sidecar.http2.hpack_static import STATIC_TABLE


def _token_table() -> bytes:
    # RFC 9110 5.6.2 tchar, less the uppercase letters HTTP/2 forbids in names (RFC 9113 8.2.1)
    allowed = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
    return bytes([1 if byte in allowed else 0 for byte in range(256)])


#: 1 at each byte allowed in an HTTP/2 field name.
_NAME_BYTES: Final[bytes] = _token_table()
#: Fields that only mean something on one HTTP/1.1 connection (RFC 9113 8.2.2).
CONNECTION_SPECIFIC: Final[frozenset[bytes]] = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
#: Valid names met on most calls (the static table's and gRPC's), known good without reading
#: them byte by byte; none is connection-specific, nor ``te``, whose value has a rule.
USUAL_NAMES: Final[frozenset[bytes]] = frozenset(
    {
        name
        for name, _value in STATIC_TABLE
        if not name.startswith(b":") and name not in CONNECTION_SPECIFIC
    }
) | frozenset(
    (
        b"grpc-timeout",
        b"grpc-encoding",
        b"grpc-accept-encoding",
        b"grpc-status",
        b"grpc-message",
        b"grpc-status-details-bin",
        b"grpc-previous-rpc-attempts",
        b"grpc-retry-pushback-ms",
        b"traceparent",
        b"tracestate",
    )
)

_COLON: Final = 0x3A
_SPACE: Final = 0x20
_TAB: Final = 0x09
_ZERO: Final = 0x30
_NINE: Final = 0x39
_NUL: Final = 0x00
_CR: Final = 0x0D
_LF: Final = 0x0A


def check_request(headers: list[tuple[bytes, bytes]]) -> str | None:
    """None if ``headers`` is a valid request head, else the reason it is not."""
    methods = 0
    schemes = 0
    paths = 0
    authorities = 0
    is_connect = False
    empty_path = False
    regular_seen = False
    for name, value in headers:
        if not name:
            return "empty field name"
        if name[0] == _COLON:
            if regular_seen:
                return "pseudo-header after a regular field"
            if name == b":method":
                methods += 1
                is_connect = value == b"CONNECT"
            elif name == b":scheme":
                schemes += 1
            elif name == b":path":
                paths += 1
                empty_path = not value
            elif name == b":authority":
                authorities += 1
            else:
                return "unknown pseudo-header in a request"
            reason = _check_value(value)
        else:
            regular_seen = True
            reason = _check_regular(name, value)
        if reason is not None:
            return reason
    if methods != 1:
        return "request without exactly one :method"
    if is_connect:
        if schemes or paths:
            return "CONNECT request with :scheme or :path"
        if authorities != 1:
            return "CONNECT request without exactly one :authority"
        return None
    if schemes != 1:
        return "request without exactly one :scheme"
    if paths != 1:
        return "request without exactly one :path"
    if empty_path:
        return "request with an empty :path"
    if authorities > 1:
        return "request with more than one :authority"
    return None


def check_response(headers: list[tuple[bytes, bytes]]) -> str | None:
    """None if ``headers`` is a valid response head, else the reason it is not."""
    statuses = 0
    regular_seen = False
    for name, value in headers:
        if not name:
            return "empty field name"
        if name[0] == _COLON:
            if regular_seen:
                return "pseudo-header after a regular field"
            if name != b":status":
                return "pseudo-header other than :status in a response"
            statuses += 1
            if len(value) != 3 or not (
                _is_digit(value[0]) and _is_digit(value[1]) and _is_digit(value[2])
            ):
                return ":status is not three digits"
        else:
            regular_seen = True
            reason = _check_regular(name, value)
            if reason is not None:
                return reason
    if statuses != 1:
        return "response without exactly one :status"
    return None


def check_trailers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """None if ``headers`` are valid trailers (no pseudo-header at all), else the reason."""
    for name, value in headers:
        if not name:
            return "empty field name"
        if name[0] == _COLON:
            return "pseudo-header in trailers"
        reason = _check_regular(name, value)
        if reason is not None:
            return reason
    return None


def _is_digit(byte: int) -> bool:
    return _ZERO <= byte <= _NINE


def _check_regular(name: bytes, value: bytes) -> str | None:
    """A regular (not pseudo) field: a token name, a clean value, no HTTP/1.1-only field."""
    if name not in USUAL_NAMES:
        if name == b"te":
            if value != b"trailers":
                return "te field other than trailers"
        else:
            table = _NAME_BYTES
            for byte in name:
                if not table[byte]:
                    return "field name not a lowercase token"
            if name in CONNECTION_SPECIFIC:
                return "connection-specific field"
    return _check_value(value)


def _check_value(value: bytes) -> str | None:
    """RFC 9113 8.2.1: no NUL, CR or LF anywhere, no space or tab at either end."""
    if not value:
        return None
    first = value[0]
    last = value[len(value) - 1]
    if first == _SPACE or first == _TAB or last == _SPACE or last == _TAB:
        return "field value with leading or trailing whitespace"
    # ints, not one-byte needles: bytes.__contains__ tries its argument as an int first, and a
    # bytes needle costs a raised and cleared TypeError (about 100 ns each)
    if _NUL in value or _CR in value or _LF in value:
        return "field value with NUL, CR or LF"
    return None

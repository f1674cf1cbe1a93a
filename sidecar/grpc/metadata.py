"""gRPC metadata and status as the chain carries them (the encoding is :mod:`sidecar.grpc.wire`'s).

grpcio hands metadata over as ``(key, value)`` pairs, ``bytes`` values for ``-bin`` keys and
``str`` otherwise; the chain carries :class:`~sidecar.exchange.Headers` whose values are all
``str`` (``-bin`` ones base64, as on the HTTP/2 wire). These functions convert both ways, drop
the transport fields gRPC sets itself (:data:`~sidecar.grpc.wire.RESERVED`), and split a
response's trailers into what grpcio takes separately: the status code, its details, and the
trailing metadata (``grpc-status-details-bin`` included, so binary details reach the app as
the upstream sent them).

A pair gRPC cannot carry (an upper-case or odd key, a value outside printable ASCII, a ``-bin``
value that is not base64) can only come from a filter or a plugin: the app's and the
upstream's metadata were checked by grpcio already. Toward the upstream it is refused with a
clear error (:class:`MetadataInvalid`); toward the app it is dropped, since the call's answer
is already decided.

Not here: which metadata a route matches on (:mod:`sidecar.grpc.routes`).
"""

from __future__ import annotations

__all__ = [
    "DETAILS_BIN",
    "Metadata",
    "MetadataInvalid",
    "headers_from_metadata",
    "request_metadata",
    "response_metadata",
    "split_status",
    "status_trailers",
]

import re
from collections.abc import Iterable

from ..errors import SidecarError
from ..exchange import Headers
from .wire import RESERVED, decode_bin, encode_bin

#: grpcio's metadata: ``str`` values, ``bytes`` for ``-bin`` keys.
Metadata = tuple[tuple[str, str | bytes], ...]

DETAILS_BIN = "grpc-status-details-bin"
#: a metadata key gRPC accepts (lower-case; HTTP/2 forbids upper case).
_KEY = re.compile(r"^[0-9a-z_.\-]+$")
#: what the status split never puts in the trailing metadata: the status itself is passed
#: apart, the rest are transport fields.
_NOT_TRAILING = RESERVED - {DETAILS_BIN}


class MetadataInvalid(SidecarError):
    """A filter or plugin put metadata on a call that gRPC cannot carry."""

    status, grpc_code, code = 500, 13, "internal"


def headers_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Headers:
    """The app's (or the upstream's) metadata as chain headers: reserved names dropped,
    ``-bin`` values base64."""
    items: list[tuple[str, str]] = []
    if metadata:
        for key, value in metadata:
            if key in RESERVED or key[:1] == ":":
                continue
            items.append((key, encode_bin(value) if isinstance(value, bytes) else value))
    return Headers.wrap(items)


def _pair(key: str, value: str) -> tuple[str, str | bytes] | None:
    """``(key, value)`` as grpcio takes it, ``None`` if gRPC cannot carry it."""
    if not _KEY.match(key):
        return None
    if key.endswith("-bin"):
        try:
            return key, decode_bin(value)
        except ValueError:
            return None
    if not (value.isascii() and value.isprintable()):
        return None
    return key, value


def request_metadata(headers: Headers) -> Metadata:
    """The chain's request headers as the metadata sent upstream; raises
    :class:`MetadataInvalid` naming a pair gRPC cannot carry."""
    out: list[tuple[str, str | bytes]] = []
    for key, value in headers.items():
        if key in RESERVED:
            continue
        pair = _pair(key, value)
        if pair is None:
            raise MetadataInvalid(
                f"request metadata {key!r} cannot be sent over gRPC (keys are lower-case "
                "letters, digits, '-', '_', '.'; values printable ASCII, base64 for -bin keys)"
            )
        out.append(pair)
    return tuple(out)


def response_metadata(headers: Headers, skip: frozenset[str] = RESERVED) -> Metadata:
    """Response headers (initial metadata) for the app; pairs gRPC cannot carry are dropped."""
    out: list[tuple[str, str | bytes]] = []
    for key, value in headers.items():
        if key in skip:
            continue
        pair = _pair(key, value)
        if pair is not None:
            out.append(pair)
    return tuple(out)


def status_trailers(
    code: int, details: str | None, trailing: Iterable[tuple[str, str | bytes]] | None
) -> Headers:
    """The trailers of a finished call: ``grpc-status``, ``grpc-message`` when there are
    details, then the trailing metadata (``grpc-status-details-bin`` included, base64)."""
    items = [("grpc-status", str(code))]
    if details:
        items.append(("grpc-message", details))
    if trailing:
        for key, value in trailing:
            if key in _NOT_TRAILING or key[:1] == ":":
                continue
            items.append((key, encode_bin(value) if isinstance(value, bytes) else value))
    return Headers.wrap(items)


def split_status(trailers: Headers) -> tuple[int, str, Metadata]:
    """The status code, details and trailing metadata of a response's trailers (the inverse
    of :func:`status_trailers`); a missing or malformed status is UNKNOWN (2), as gRPC
    clients treat it, and a code past the known ones too."""
    code, details = 2, ""
    for key, value in trailers.items():
        if key == "grpc-status":
            code = int(value) if value.isdigit() and len(value) < 4 else 2
        elif key == "grpc-message":
            details = value
    if code > 16:
        code = 2
    return code, details, response_metadata(trailers, _NOT_TRAILING)

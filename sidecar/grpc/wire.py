"""How a gRPC call travels through the filter chain: the contract between the gRPC listener
(:mod:`sidecar.grpc.listener`) and the gRPC adapter (:mod:`sidecar.grpc.adapter`), and what any
filter may rely on. It mirrors gRPC over HTTP/2, so protocol-neutral filters (auth, tracing,
rate limits) work unchanged: metadata are headers, messages are body chunks, the status is in
trailers.

**Request** (an ``Exchange`` built by the listener):

- ``listener`` is ``"grpc"``, ``method`` ``"POST"``, ``path`` ``"/<package.Service>/<Method>"``,
  ``query`` ``""``, ``host`` the ``:authority`` the app's channel sent.
- ``headers``: the app's request metadata, lower-case names, without the names in
  :data:`RESERVED` (transport fields gRPC sets itself). Values of ``-bin`` keys are base64
  (:func:`encode_bin`), as on the HTTP/2 wire, so every value is a ``str``.
- ``body``: an ``AsyncIterator[bytes]`` yielding **one whole serialized message per item**, never
  re-chunked; ``body_length`` is ``None``. A filter that buffers the body (retry replay, signing)
  must keep the items as they are. Or ``bytes``: **exactly one message** (``b""`` an empty one),
  the whole request, ``body_length`` its length: the app had half-closed after it when the call
  began (the HTTP/2 front hands a unary call's request over so), or a filter holds it whole.
- ``deadline``: the app's deadline as loop time when it sent one, else ``None``; the ``timeout``
  filter only ever shortens it.

**Response** (from the adapter, or from ``rescue`` for a decision: :func:`error_response`):

- ``status`` is 200: in gRPC terms every answered call is an HTTP 200.
- ``headers``: the initial metadata, same encoding, no reserved names.
- ``body``: an ``AsyncIterator[bytes]`` of whole response messages, or ``bytes``: one message
  when not empty, none when ``b""``.
- ``trailers``: ``grpc-status`` (decimal), ``grpc-message`` (plain text: not percent-encoded
  here), ``grpc-status-details-bin`` (base64) when there are details, then the trailing
  metadata. With a streaming body, the adapter sets them before the iterator ends; a response
  returned with ``body == b""`` has them already (a trailers-only answer, e.g. UNAVAILABLE).
  A sidecar decision adds ``x-sidecar-error: <code>`` to them.
"""

from __future__ import annotations

__all__ = [
    "GRPC_LISTENER",
    "RESERVED",
    "STATUS_NAMES",
    "classify_grpc",
    "condition_of",
    "decode_bin",
    "encode_bin",
    "error_response",
    "grpc_status",
]

import base64
import binascii

from ..errors import SidecarError
from ..exchange import Headers, Response
from ..outcomes import conditions_of_error

GRPC_LISTENER = "grpc"

#: Names never carried as metadata through the chain: HTTP/2 and gRPC transport fields that each
#: side's gRPC library sets itself (or that would break the call if copied: ``grpc-timeout`` is
#: the deadline, carried as ``Exchange.deadline``), and the hop-by-hop ones.
RESERVED = frozenset(
    {
        "te",
        "content-type",
        "content-length",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)

#: gRPC status codes by number, as their canonical names.
STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
#: condition names (``retry.on``, ``circuit_breaker.failure_on``) of non-OK codes:
#: ``unavailable``, ``deadline-exceeded``, ``resource-exhausted``...
_CONDITIONS: dict[int, tuple[str, ...]] = {
    code: (name.lower().replace("_", "-"),) for code, name in enumerate(STATUS_NAMES) if code
}


def encode_bin(value: bytes) -> str:
    """A ``-bin`` metadata value as carried in ``Headers`` (standard base64, padded)."""
    return base64.b64encode(value).decode("ascii")


def decode_bin(value: str) -> bytes:
    """The bytes of a ``-bin`` value; accepts unpadded base64 as gRPC peers may send it."""
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a -bin metadata value that is not base64") from None


def grpc_status(response: Response) -> int | None:
    """The response's ``grpc-status``, ``None`` while it is not known (a stream not yet read)."""
    trailers = response.trailers
    if trailers is None:
        return None
    value = trailers.get("grpc-status")
    if value is None or not value.isdigit():
        return None
    return int(value)


def condition_of(code: int) -> tuple[str, ...]:
    """Condition names of a gRPC status code: ``()`` for OK, ``("unavailable",)`` for 14."""
    return _CONDITIONS.get(code, ("unknown",)) if code else ()


def classify_grpc(response: Response | None, error: BaseException | None) -> tuple[str, ...]:
    """The gRPC adapter's classifier: sidecar transport errors by kind, a known non-OK
    ``grpc-status`` by its name. A stream whose status comes later is judged a success here."""
    if error is not None:
        return conditions_of_error(error)
    if response is not None:
        code = grpc_status(response)
        if code:
            return condition_of(code)
    return ()


def error_response(error: SidecarError) -> Response:
    """A sidecar decision as a gRPC answer: trailers-only, ``grpc-status`` from the error's
    ``grpc_code``, its detail as ``grpc-message``, and ``x-sidecar-error`` (plus the error's own
    headers, e.g. ``retry-after``) as trailing metadata."""
    resp = Response(200)
    resp.trailers = Headers.wrap(
        [
            ("grpc-status", str(error.grpc_code)),
            ("grpc-message", f"{error.code}: {error.detail}"),
            ("x-sidecar-error", error.code),
            *error.headers,
        ]
    )
    return resp

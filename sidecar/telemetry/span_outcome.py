"""How a call's end is written on its span: status code, sidecar decision, error type.

Shared by the SERVER and CLIENT tracing filters (:mod:`sidecar.filters.tracing`), following the
OpenTelemetry HTTP and RPC semantic conventions:

- an answer: ``http.response.status_code`` (HTTP) or ``rpc.grpc.status_code`` from the trailers
  (gRPC, known once the call ended); status ERROR and ``error.type`` for a 5xx on a SERVER span,
  for any status from 400 on a CLIENT span (the upstream refused our request), and for the gRPC
  codes each kind counts as errors;
- a sidecar decision (a :class:`~sidecar.errors.SidecarError`): status ERROR with
  ``<code>: <detail>``, ``sidecar.decision`` and ``error.type`` set to its code
  (``rate_limited``, ``circuit_open``, ``upstream_timeout``...), and a ``sidecar.decision``
  event at the moment it was made; on a SERVER span also the status (or gRPC code) the app gets;
- anything else raised: ``error.type`` is the exception's class, never its message;
- a response cut short (the app went away, the deadline fired mid-body): ``sidecar.aborted``.

Each takes the span's attributes so far (``attrs``, the caller's own dict), adds the outcome's
and sets them all in one call as the span ends: the SDK validates and copies attributes, under
a lock, per call, so a span gets them once rather than at its start and again at its end.

Nothing from a header, a query string or a body is ever written on a span.
"""

from __future__ import annotations

__all__ = ["Attributes", "answered", "cut", "decided", "failed"]

from opentelemetry.trace import Span, Status, StatusCode

from ..errors import SidecarError
from ..exchange import Response
from ..grpc.wire import STATUS_NAMES, grpc_status

#: gRPC codes a server counts as its own failure (semantic conventions); a client counts all.
_SERVER_GRPC_ERRORS = frozenset({2, 4, 12, 13, 14, 15})  # UNKNOWN ... DATA_LOSS
_ERROR = Status(StatusCode.ERROR)

#: A span's attributes, gathered by the caller until the span ends.
Attributes = dict[str, str | int | bool]


def answered(
    span: Span, attrs: Attributes, resp: Response, ok: bool, *, grpc: bool, server: bool
) -> None:
    """End ``span`` for a call that got ``resp`` (``ok``: its body was fully delivered)."""
    error: str | None = None
    if grpc:
        code = grpc_status(resp)
        if code is not None:
            attrs["rpc.grpc.status_code"] = code
            if code and (not server or code in _SERVER_GRPC_ERRORS):
                error = STATUS_NAMES[code] if code < len(STATUS_NAMES) else str(code)
    else:
        status = resp.status
        attrs["http.response.status_code"] = status
        if status >= 500 or (status >= 400 and not server):
            error = str(status)
    if error is not None:
        attrs["error.type"] = error
        span.set_status(_ERROR)
    if not ok:
        attrs["sidecar.aborted"] = True
    span.set_attributes(attrs)
    span.end()


def decided(
    span: Span, attrs: Attributes, error: SidecarError, *, grpc: bool, server: bool
) -> None:
    """End ``span`` for a call the sidecar answered itself (or an attempt it gave up)."""
    code = error.code
    span.add_event("sidecar.decision", {"sidecar.decision": code})
    attrs["sidecar.decision"] = code
    attrs["error.type"] = code
    if server:
        if grpc:
            attrs["rpc.grpc.status_code"] = error.grpc_code
        else:
            attrs["http.response.status_code"] = error.status
    span.set_attributes(attrs)
    span.set_status(Status(StatusCode.ERROR, f"{code}: {error.detail}"))
    span.end()


def failed(span: Span, attrs: Attributes, error: BaseException) -> None:
    """End ``span`` for an unexpected error (``rescue`` answers it with 500 internal)."""
    attrs["error.type"] = type(error).__qualname__
    span.set_attributes(attrs)
    span.set_status(_ERROR)
    span.end()


def cut(span: Span, attrs: Attributes) -> None:
    """End ``span`` for a call cancelled before its answer (the app went away, the drain)."""
    attrs["sidecar.aborted"] = True
    span.set_attributes(attrs)
    span.end()

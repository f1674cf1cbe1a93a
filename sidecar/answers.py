"""How a sidecar decision is answered over HTTP: its status, ``x-sidecar-error`` and one line.

The HTTP fronts' :attr:`~sidecar.api.FrontTraits.error_response`; the gRPC one is
:func:`sidecar.grpc.wire.error_response`. The ``rescue`` filter and the listeners' own refusals
(404, 413, 431...) both answer through it, so every refusal looks the same to the app.
"""

from __future__ import annotations

__all__ = ["error_body", "error_response"]

from .errors import SidecarError
from .exchange import Headers, Response


def error_body(error: SidecarError) -> bytes:
    """The one-line body of a sidecar decision answered over HTTP."""
    return f"{error.code}: {error.detail}\n".encode()


def error_response(error: SidecarError) -> Response:
    """``error`` as an HTTP answer: its status, ``x-sidecar-error: <code>``, its headers
    (``retry-after``...) and :func:`error_body`; the connection closes when the error says so."""
    headers = Headers.wrap(
        [
            ("content-type", "text/plain; charset=utf-8"),
            ("x-sidecar-error", error.code),
            *error.headers,
        ]
    )
    resp = Response(error.status, headers, error_body(error))
    resp.close = error.close_connection
    return resp

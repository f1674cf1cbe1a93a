"""GraphQL-shaped answers the sidecar makes itself: ``{"errors": [{"message", "extensions":
{"code"}}]}``, with the status the GraphQL-over-HTTP spec gives a refused request.

:class:`Refusal` is how the request checks say no (a document too deep, a hash not found...);
the ``graphql`` filter turns it into the answer once. Not here: the server's own errors, which
pass to the app as the server wrote them.
"""

from __future__ import annotations

__all__ = ["Refusal", "error_response"]

import json

from sidecar import Headers, Response

#: tells the app the sidecar answered, as the sidecar's own refusals do (``x-sidecar-error``)
SIDECAR_ERROR = "x-sidecar-error"


class Refusal(Exception):
    """A request the sidecar answers itself. ``code`` is the ``extensions.code`` (a fixed
    string, also the metric's ``reason``); ``message`` never repeats what the app sent beyond
    names and numbers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(refusal: Refusal) -> Response:
    """The answer for ``refusal``."""
    body = json.dumps(
        {"errors": [{"message": refusal.message, "extensions": {"code": refusal.code}}]}
    ).encode()
    headers = Headers(
        [
            ("content-type", "application/json"),
            (SIDECAR_ERROR, "graphql_" + refusal.code.lower()),
        ]
    )
    return Response(refusal.status, headers, body)

"""What a front and an adapter are, given to filters as data.

A filter never asks which listener or adapter it runs with by name. The front that accepts a
call says how it answers (HTTP statuses, or gRPC statuses in trailers), whether the body is a
stream of whole messages, and whether its callers are authenticated peers; the upstream's adapter
says how the upstream answers and whether it shows the app what it received. A new front or
adapter declares its traits and every built-in filter does the right thing without an edit.
"""

from __future__ import annotations

__all__ = ["GRPC_STATUSES", "HTTP_STATUSES", "AdapterTraits", "FrontTraits", "StatusScheme"]

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..answers import error_response as http_error_response
from ..errors import SidecarError
from ..exchange import Response

#: How calls are answered: with HTTP status codes, or with gRPC statuses in trailers (every
#: answered call is an HTTP 200; ``grpc-status`` says how it ended).
StatusScheme = Literal["http", "grpc"]
HTTP_STATUSES: StatusScheme = "http"
GRPC_STATUSES: StatusScheme = "grpc"


@dataclass(frozen=True, slots=True)
class FrontTraits:
    """What the front that accepts a route's calls is, as filters need to know it."""

    #: the front's name: the ``listener`` label of metrics, log lines and spans.
    name: str
    #: how the app gets its answer; ``"grpc"``: status and message are trailers, and metrics,
    #: the access log and spans read the gRPC code (:func:`sidecar.grpc.wire.grpc_status`).
    statuses: StatusScheme = HTTP_STATUSES
    #: the request body is a stream of whole messages (gRPC): a filter that buffers it (retry
    #: replay, signing) keeps the items as they are, and its size limit is the message buffer.
    whole_messages: bool = False
    #: callers are authenticated peers (the inbound mTLS front): peer allow-lists and the
    #: identity header apply to its routes.
    peer_identity: bool = False
    #: how a sidecar decision is answered on this front (the ``rescue`` filter calls it).
    error_response: Callable[[SidecarError], Response] = http_error_response

    @property
    def grpc(self) -> bool:
        """Whether calls are answered in gRPC terms."""
        return self.statuses == GRPC_STATUSES


@dataclass(frozen=True, slots=True)
class AdapterTraits:
    """What an adapter is, as filters need to know it (``Adapter.traits``)."""

    #: how the upstream answers; ``"grpc"``: CLIENT spans read the gRPC code from trailers.
    statuses: StatusScheme = HTTP_STATUSES
    #: the adapter shows the app what the upstream received (the ``echo`` adapter): filters
    #: that inject a secret mark it on the call (:mod:`sidecar.injected`) so it is shown
    #: redacted. Other adapters never show a request, so nothing is marked for them.
    shows_requests: bool = False

"""grpcio's errors on an upstream call, translated once: a status the upstream sent is passed
on as sent; one grpcio made up itself (:func:`local_reason`: a connection that could not be
made or broke, the deadline, a size limit) is the sidecar's finding.

Before any answer such a finding is raised as ``upstream_connect`` (``tls`` when the handshake
was refused), ``upstream_reset`` or ``upstream_timeout``; after the answer began, the status
stays, its details name the upstream, and ``x-sidecar-error`` says the reason.

Not here: the calls that meet these errors (:mod:`.upstream_call`, :mod:`.unary_call`). This
module imports grpcio: only those two import it.
"""

from __future__ import annotations

__all__ = ["failed_trailers", "local_reason"]

import asyncio

import grpc

from ..errors import UpstreamConnectError, UpstreamReset, UpstreamTimeout, UpstreamTLSError
from ..exchange import Headers
from .metadata import status_trailers


def failed_trailers(
    error: grpc.aio.AioRpcError, where: str, deadline: float | None, *, answered: bool
) -> Headers:
    """The trailers of a call that ended with a non-OK status; raises the sidecar's error for
    one grpcio made up before any answer (see the module docstring)."""
    code: int = error.code().value[0]
    details: str = error.details() or ""
    trailing = error.trailing_metadata()
    reason = local_reason(code, details, deadline)
    if reason is None:
        return status_trailers(code, details, trailing)
    if not answered:
        if reason == "upstream_connect":
            lowered = details.lower()
            if any(word in lowered for word in _TLS_WORDS):
                raise UpstreamTLSError(f"TLS with {where} failed: {details}")
            raise UpstreamConnectError(f"cannot reach {where}: {details}")
        if reason == "upstream_timeout":
            raise UpstreamTimeout(f"no answer from {where} within the call's deadline")
        if reason == "upstream_reset":
            raise UpstreamReset(f"{where} closed the connection: {details}")
    trailers = status_trailers(code, f"{where}: {details}", trailing)
    trailers.add("x-sidecar-error", reason)
    return trailers


def local_reason(code: int, details: str, deadline: float | None) -> str | None:
    """The ``x-sidecar-error`` reason of a status grpcio made up itself (its transport failed,
    the deadline passed, a size limit), ``None`` for one the upstream sent. grpcio does not say
    which it was: its own statuses are told by their wording, and a deadline by the clock
    (``deadline``: the upstream call's own, loop time; the upstream's may pass a millisecond or
    two before grpcio's, so a little earlier counts).
    """
    if code == 4:
        if deadline is not None and asyncio.get_running_loop().time() >= deadline - 0.002:
            return "upstream_timeout"
        return None
    lowered = details.lower()
    if code == 8 and "larger than max" in lowered:
        return "body_too_large"  # (grpcio words it "Stream removed (... larger than max ...)")
    if code == 14 and any(words in lowered for words in _CONNECT_WORDS):
        return "upstream_connect"
    if any(words in lowered for words in _TRANSPORT_WORDS):
        return "upstream_reset"
    return None


#: grpcio's wording for failures it found itself (an upstream does not answer with these).
_CONNECT_WORDS = (
    "failed to connect to all addresses",
    "failed to connect to remote host",
    "dns resolution failed",
    "connections to all backends failing",
)
_TRANSPORT_WORDS = (
    "socket closed",
    "connection reset",
    "broken pipe",
    "goaway",
    "rst_stream",
    "keepalive watchdog",
    "stream removed",
    "endpoint closing",
)
_TLS_WORDS = ("handshake", "ssl", "certificate", "tls")

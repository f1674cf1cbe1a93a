"""Typed errors of the sidecar.

Every failure the sidecar itself decides (as opposed to an answer the upstream gave) is a
:class:`SidecarError` subclass carrying an HTTP status, a gRPC status code and a short stable
``code`` that reaches the app in the ``x-sidecar-error`` header. Library exceptions are translated
into these at the boundary that called the library (httpcore's habit); they become responses in
exactly one place, the outermost ``rescue`` filter.

This module is flat on purpose: one base, one class per reason.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BodyTooLarge",
    "CircuitOpen",
    "ConfigError",
    "ConfigProblem",
    "CredentialsUnavailable",
    "HeadersTooLarge",
    "NoRoute",
    "Overloaded",
    "PeerNotAllowed",
    "PluginError",
    "RateLimitUnavailable",
    "RateLimited",
    "RegistryConflict",
    "ReplayCheckUnavailable",
    "RequestTimeout",
    "SidecarError",
    "SignatureInvalid",
    "UpstreamConnectError",
    "UpstreamTLSError",
    "UpstreamProtocolError",
    "UpstreamReset",
    "UpstreamTimeout",
    "UriTooLong",
]

from dataclasses import dataclass


class SidecarError(Exception):
    """A decision of the sidecar that ends a call with a synthetic response."""

    status: int = 500
    grpc_code: int = 13  # INTERNAL
    code: str = "internal"
    #: whether the client connection must be closed after the response (malformed input).
    close_connection: bool = False
    #: extra response headers, e.g. ``Retry-After``.
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, detail: str = "", *, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        if headers:
            self.headers = headers


class BadRequest(SidecarError):
    status, grpc_code, code, close_connection = 400, 3, "bad_request", True


class RequestTimeout(SidecarError):
    status, grpc_code, code, close_connection = 408, 4, "request_timeout", True


class UriTooLong(SidecarError):
    status, grpc_code, code, close_connection = 414, 3, "uri_too_long", True


class HeadersTooLarge(SidecarError):
    status, grpc_code, code, close_connection = 431, 8, "headers_too_large", True


class BodyTooLarge(SidecarError):
    status, grpc_code, code, close_connection = 413, 8, "body_too_large", True


class NoRoute(SidecarError):
    status, grpc_code, code = 404, 12, "no_route"  # UNIMPLEMENTED


class Overloaded(SidecarError):
    status, grpc_code, code = 503, 14, "overloaded"  # UNAVAILABLE


class CircuitOpen(SidecarError):
    """The upstream's circuit breaker is open: refused without calling it (``Retry-After``)."""

    status, grpc_code, code = 503, 14, "circuit_open"  # UNAVAILABLE


class RateLimited(SidecarError):
    """A rate limit refused the call (``Retry-After``, ``RateLimit-Policy``, ``RateLimit``)."""

    status, grpc_code, code = 429, 8, "rate_limited"  # RESOURCE_EXHAUSTED


class RateLimitUnavailable(SidecarError):
    """A global limit's backend could not decide and its ``on_error`` is ``deny``."""

    status, grpc_code, code = 503, 14, "ratelimit_unavailable"  # UNAVAILABLE


class CredentialsUnavailable(SidecarError):
    """The upstream's credential cannot be had: no valid token is cached and the identity
    provider fails (an expired token is never sent instead)."""

    status, grpc_code, code = 503, 14, "credentials_unavailable"  # UNAVAILABLE


class SignatureInvalid(SidecarError):
    """An inbound request's HMAC signature or timestamp did not verify (or was a replay)."""

    status, grpc_code, code = 401, 16, "signature_invalid"  # UNAUTHENTICATED


class ReplayCheckUnavailable(SidecarError):
    """``verify_hmac`` could not ask its shared replay store (Redis) in time: a replay cannot be
    ruled out, so the call is refused (fail closed) and the sender tries again later."""

    status, grpc_code, code = 503, 14, "replay_check_unavailable"  # UNAVAILABLE


class PeerNotAllowed(SidecarError):
    """An inbound call's verified peer (its SPIFFE ID) is not on the route's allow-list."""

    status, grpc_code, code = 403, 7, "peer_not_allowed"  # PERMISSION_DENIED


class UpstreamConnectError(SidecarError):
    status, grpc_code, code = 502, 14, "upstream_connect"


class UpstreamTLSError(UpstreamConnectError):
    """The TLS handshake or the peer's identity was refused (bad certificate, wrong name or
    SPIFFE ID). The app sees ``upstream_connect`` like any connect failure; policies see the
    condition ``tls``: trying the same peer again will not help, so it is not retried by
    default, while the breaker still counts it."""

    conditions = ("tls",)


class UpstreamReset(SidecarError):
    status, grpc_code, code = 502, 14, "upstream_reset"


class UpstreamProtocolError(SidecarError):
    status, grpc_code, code = 502, 13, "upstream_protocol"


class UpstreamTimeout(SidecarError):
    status, grpc_code, code = 504, 4, "upstream_timeout"  # DEADLINE_EXCEEDED


class PluginError(Exception):
    """A plugin failed while the sidecar was starting or reloading; the message names it."""


class RegistryConflict(PluginError):
    """Two plugins registered the same name; the message names both owners."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file: where it is and why it is wrong."""

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.path}: {self.reason}"
            if self.path
            else f"{self.file}: {self.reason}"
        )


class ConfigError(Exception):
    """A config was refused; ``problems`` lists every reason, each with file and key path."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

"""The options of a gRPC upstream (``upstreams.<name>.options`` with ``adapter: grpc``), the
error for a config no channel can honour, and which methods are declared unary.

``grpc://host:port`` is plaintext, ``grpcs://host:port`` TLS (:mod:`.h2_channel_target` reads a
channel's target from the config, :mod:`.h2_channel` connects). ``options.unary_methods`` names
the methods a call may reach as a unary call (one request message, one answer: its answer is
read whole); :func:`unary_matcher` tells them. It is not part of the channel: a change to it
keeps the channel.

Nothing here imports a gRPC library: the options model and the checks are read by every
sidecar's config validation.
"""

from __future__ import annotations

__all__ = ["SCHEMES", "ChannelConfigError", "GrpcUpstreamOptions", "unary_matcher"]

import re
from collections.abc import Callable, Iterable
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from ..config.base import Model
from ..config.types import PositiveDuration, Size
from .keepalive_limits import KeepaliveTime, KeepaliveTimeout, PermitWithoutCalls

SCHEMES = {"grpc": False, "grpcs": True}
#: ``package.Service/Method`` or ``package.Service/*`` (a leading ``/`` is allowed).
_UNARY_METHOD = re.compile(r"^/?[A-Za-z_]\w*(\.[A-Za-z_]\w*)*/([A-Za-z_]\w*|\*)$", re.ASCII)


def _unary_method(value: str) -> str:
    if not _UNARY_METHOD.match(value):
        raise PydanticCustomError(
            "grpc_method",
            'expected "package.Service/Method" or "package.Service/*", got {got}',
            {"got": repr(value[:100])},
        )
    return value.lstrip("/")


UnaryMethodName = Annotated[str, AfterValidator(_unary_method)]


class GrpcUpstreamOptions(Model):
    """``upstreams.<name>.options`` of an upstream with ``adapter: grpc`` (docs/grpc.md)."""

    #: send an HTTP/2 ping after this long without activity (at least gRPC's 10 s, refused
    #: below: :mod:`.keepalive_limits`); unset: no keepalive pings.
    keepalive_time: KeepaliveTime | None = None
    #: a ping unanswered for this long closes the connection (its calls end UNAVAILABLE).
    keepalive_timeout: KeepaliveTimeout = 20.0
    #: ping even while no call is in flight (the upstream must allow it, or it sends GOAWAY);
    #: only with ``keepalive_time`` (declared before it: its validator reads it).
    keepalive_permit_without_calls: PermitWithoutCalls = False
    #: largest message sent to the upstream (RESOURCE_EXHAUSTED past it).
    max_send_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: largest message accepted from the upstream (RESOURCE_EXHAUSTED past it).
    max_receive_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: longest wait between two attempts to reconnect to a down upstream.
    max_reconnect_backoff: PositiveDuration = 5.0
    #: methods that are unary in their ``.proto`` (one request, one answer), as the upstream
    #: names them (after any ``prefix_rewrite``): ``package.Service/Method``, or
    #: ``package.Service/*`` for every method of a service. A call to one whose request is one
    #: whole message is answered whole: its status is known before the answer goes back, so
    #: retry and the breaker judge it (docs/grpc.md).
    unary_methods: tuple[UnaryMethodName, ...] = Field((), max_length=4096)


def unary_matcher(methods: Iterable[str]) -> Callable[[str], bool]:
    """Whether a method path (``/package.Service/Method``) is one of ``methods``
    (:attr:`GrpcUpstreamOptions.unary_methods`)."""
    exact = frozenset(f"/{m}" for m in methods if not m.endswith("/*"))
    services = frozenset(f"/{m[:-2]}" for m in methods if m.endswith("/*"))
    if not services:
        return exact.__contains__

    def is_unary(path: str) -> bool:
        return path in exact or path[: path.rfind("/")] in services

    return is_unary


class ChannelConfigError(ValueError):
    """An upstream's config that no gRPC channel can honour; ``key`` is where (under it)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key

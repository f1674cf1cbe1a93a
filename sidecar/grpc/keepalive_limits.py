"""gRPC's limits on a client's keepalive, applied to a gRPC upstream's options
(``keepalive_time``, ``keepalive_timeout``, ``keepalive_permit_without_calls``) when the config
is read.

gRPC's client keepalive design (gRFC A8) puts a floor of 10 s under the time between PINGs:
grpc-go and grpc-java raise a shorter one to 10 s with a logged warning, and servers by default
accept a PING at most every 5 minutes while they send nothing (fewer with no call in flight),
answering repeated early ones with GOAWAY ``too_many_pings``, which ends every call on the
connection. The sidecar refuses a keepalive it
would not send as written, instead of raising it quietly: the file then says what the sidecar
does, and ``sidecar check`` catches a ``10ms`` meant as ``10s`` before any upstream sees it.

Not here: the pings themselves (:mod:`.h2_client_connection`), and the upstream's own ping
policy, which the sidecar cannot know (docs/grpc.md says how to match it).
"""

from __future__ import annotations

__all__ = [
    "MAX_KEEPALIVE_TIMEOUT",
    "MIN_KEEPALIVE_TIME",
    "KeepaliveTime",
    "KeepaliveTimeout",
    "PermitWithoutCalls",
]

from typing import Annotated

from pydantic import AfterValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from ..config.types import Duration, PositiveDuration

#: gRPC's floor under a client's keepalive time (gRFC A8; grpc-go's and grpc-java's clamp).
MIN_KEEPALIVE_TIME = 10.0
#: Longest wait for a PING's answer. By then a broken path has long been given up by the
#: kernel too (Linux drops a connection whose bytes stay unacknowledged for about 15 minutes,
#: ``net.ipv4.tcp_retries2``); a longer wait only keeps the calls on a dead connection waiting.
MAX_KEEPALIVE_TIMEOUT = 15 * 60.0


def _spelled(seconds: float) -> str:
    """A duration as a config would spell it: ``10ms``, ``2.5s``, ``16m``."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s" if seconds < 60 else f"{seconds / 60:g}m"


def _at_least_grpc_floor(seconds: float) -> float:
    if seconds < MIN_KEEPALIVE_TIME:
        raise PydanticCustomError(
            "keepalive_time",
            "must be at least {floor} (gRPC's minimum), got {got}: gRPC clients (grpc-go, "
            "grpc-java) raise a shorter one to {floor}, and gRPC servers by default accept a "
            "PING at most every 5 minutes while they send nothing, answering repeated early "
            "PINGs with GOAWAY too_many_pings, which ends the connection and its calls; leave "
            "it unset for no pings",
            {"floor": _spelled(MIN_KEEPALIVE_TIME), "got": _spelled(seconds)},
        )
    return seconds


def _at_most_timeout_cap(seconds: float) -> float:
    if seconds > MAX_KEEPALIVE_TIMEOUT:
        raise PydanticCustomError(
            "keepalive_timeout",
            "must be at most {cap}, got {got}: a PING unanswered that long means the connection "
            "is dead (Linux itself gives up on unacknowledged bytes after about 15 minutes), "
            "and the calls on it would wait all that time",
            {"cap": _spelled(MAX_KEEPALIVE_TIMEOUT), "got": _spelled(seconds)},
        )
    return seconds


def _needs_keepalive_time(permit: bool, info: ValidationInfo) -> bool:
    # ``keepalive_time`` is declared before this option, so it is in ``info.data`` once valid;
    # absent, it was refused itself and its own problem says so.
    if permit and "keepalive_time" in info.data and info.data["keepalive_time"] is None:
        raise PydanticCustomError(
            "keepalive_permit_without_calls",
            "sends no PING while keepalive_time is unset (keepalive is off): set keepalive_time "
            "(at least {floor}) or remove this option",
            {"floor": _spelled(MIN_KEEPALIVE_TIME)},
        )
    return permit


#: Time without a byte from the upstream before a PING: at least gRPC's 10 s.
KeepaliveTime = Annotated[Duration, AfterValidator(_at_least_grpc_floor)]
#: Wait for a PING's answer: more than 0, at most 15 minutes.
KeepaliveTimeout = Annotated[PositiveDuration, AfterValidator(_at_most_timeout_cap)]
#: PING with no call in flight: only with a ``keepalive_time`` (it is declared after it).
PermitWithoutCalls = Annotated[bool, AfterValidator(_needs_keepalive_time)]

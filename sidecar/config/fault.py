"""``upstreams.<name>.fault:`` (and ``routes[i].fault:``): injected delays and aborts for testing
how an app copes with a slow or failing upstream (Envoy's fault filter is the model).

Only the shape and the bounds of the section. What the ``fault`` filter does with it, and the
app's ``x-sidecar-fault-*`` headers, are :mod:`sidecar.filters.fault`. Absent (the default), the
filter is not in the chain at all.
"""

from __future__ import annotations

__all__ = ["FaultAbort", "FaultDelay", "FaultPolicy", "grpc_code_of"]

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from ..grpc.wire import STATUS_NAMES
from .base import Model
from .types import PositiveDuration, show

#: the longest delay any fault may inject (configured or asked for by a header).
MAX_DELAY = 300.0

#: gRPC status codes by canonical name (``UNAVAILABLE`` → 14), OK left out.
_GRPC_CODES = {name: code for code, name in enumerate(STATUS_NAMES) if code}

#: the gRPC code an HTTP status maps to (gRPC's own HTTP-to-gRPC table, with 5xx as UNAVAILABLE
#: like 502-504, since an injected abort stands for an upstream failure).
_HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14}


def grpc_code_of(status: int) -> int:
    """The gRPC code an injected HTTP status is answered with on the gRPC port."""
    if status in _HTTP_TO_GRPC:
        return _HTTP_TO_GRPC[status]
    return 14 if status >= 500 else 2  # UNAVAILABLE, else UNKNOWN


def _grpc_status(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16:
        return value
    if isinstance(value, str):
        name = value.strip().upper().replace("-", "_")
        if name in _GRPC_CODES:
            return _GRPC_CODES[name]
        if name.isdigit() and 1 <= int(name) <= 16:
            return int(name)
    raise PydanticCustomError(
        "grpc_status",
        "expected a non-OK gRPC status like UNAVAILABLE or 14, got {got}",
        {"got": show(value)},
    )


GrpcStatus = Annotated[int | None, BeforeValidator(_grpc_status)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]


class FaultDelay(Model):
    """``fault.delay:``: hold ``percent`` % of calls for ``duration`` before sending them on."""

    percent: Percent = 100.0
    duration: PositiveDuration = Field(le=MAX_DELAY)


class FaultAbort(Model):
    """``fault.abort:``: answer ``percent`` % of calls with ``status`` without calling the
    upstream (on the gRPC port: ``grpc_status``, unset: the code ``status`` maps to)."""

    percent: Percent = 100.0
    status: int = Field(503, ge=400, le=599)
    grpc_status: GrpcStatus = None


class FaultPolicy(Model):
    """``upstreams.<name>.fault`` (and ``routes[i].fault``, which replaces it whole)."""

    enabled: bool = True
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None
    #: the app may ask for a fault per call with ``x-sidecar-fault-*`` headers.
    header_triggered: bool = False
    #: the longest delay a header may ask for (longer: refused with 400).
    header_max_delay: PositiveDuration = Field(5.0, le=MAX_DELAY)
    #: calls being faulted at once (per upstream); past it a call goes through unfaulted.
    max_active: int = Field(100, ge=1, le=100_000)
    #: seed of the random source that picks the faulted ``percent`` (unset: unpredictable);
    #: a seed makes a test run pick the same calls each time.
    seed: int | None = None

    @model_validator(mode="after")
    def _something(self) -> FaultPolicy:
        if self.enabled and self.delay is None and self.abort is None and not self.header_triggered:
            raise PydanticCustomError(
                "fault", "a fault needs delay, abort or header_triggered: true (or enabled: false)"
            )
        return self

"""W3C Trace Context on the wire: the app's ``traceparent``/``tracestate`` in, ours out.

:func:`read_parent` reads the app's ``traceparent`` (HTTP headers or gRPC metadata: the same
:class:`~sidecar.exchange.Headers`) into its trace id and flags, or ``None`` when the app sent
none or a malformed one (a new trace); that is all the sampling decision needs
(:mod:`.head_sampling`). Only a sampled call turns it into an OpenTelemetry parent context
(:func:`parent_context`, with the app's ``tracestate``). Toward the upstream, :func:`inject`
writes a span's context, and :func:`send_traceparent` an unsampled call's ready-made header,
replacing what the app sent, so the upstream's parent is the sidecar's. ``baggage`` is not
touched: the sidecar adds no entries, so the app's header travels on unchanged.

Written here rather than through the OTel propagator API so the request path pays one regular
expression and no contextvar (the propagators read and write the current context).
"""

from __future__ import annotations

__all__ = [
    "EMPTY",
    "Parent",
    "drop_tracestate",
    "inject",
    "parent_context",
    "read_parent",
    "send_traceparent",
    "traceparent",
]

import re

from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from ..exchange import Headers

#: The context of a new trace: no parent (never the ambient current context).
EMPTY = Context()

#: The app's span, as sent: (trace id and span id in lower-case hex, flags).
Parent = tuple[str, str, int]

# version, trace id, parent id, flags; a future version may append fields after a "-"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
#: the headers :func:`inject` owns toward the upstream.
_OURS = frozenset({"traceparent", "tracestate"})


def read_parent(headers: Headers) -> Parent | None:
    """The app's span from its ``traceparent``, or ``None`` (start a new trace)."""
    value = headers.get("traceparent")
    if value is None:
        return None
    m = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    version, trace_hex, span_hex, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_hex == _ZERO_TRACE or span_hex == _ZERO_SPAN:
        return None  # all-zero ids are invalid
    return trace_hex, span_hex, int(flags, 16)


def parent_context(parent: Parent, headers: Headers) -> Context:
    """``parent`` (read from ``headers``) as the remote parent of a span, with its
    ``tracestate``."""
    trace_hex, span_hex, flags = parent
    state = None
    if "tracestate" in headers:
        # several tracestate fields are one list (RFC 9110 §5.3); a malformed one is dropped
        state = TraceState.from_header(headers.get_all("tracestate"))
    span = SpanContext(
        int(trace_hex, 16),
        int(span_hex, 16),
        is_remote=True,
        trace_flags=TraceFlags(flags),
        trace_state=state,
    )
    return set_span_in_context(NonRecordingSpan(span), EMPTY)


def traceparent(span: SpanContext) -> str:
    """``00-<trace id>-<span id>-<flags>`` for ``span``."""
    return f"00-{span.trace_id:032x}-{span.span_id:016x}-{span.trace_flags:02x}"


def inject(headers: Headers, span: SpanContext) -> None:
    """Make ``span`` the upstream's parent: our ``traceparent`` (and ``tracestate``, when the
    trace has one) replace the app's, in place."""
    items = headers.items()
    items[:] = [kv for kv in items if kv[0] not in _OURS]
    items.append(("traceparent", traceparent(span)))
    state = span.trace_state
    if state:
        items.append(("tracestate", state.to_header()))


def send_traceparent(headers: Headers, value: str) -> None:
    """Make ``value`` the upstream's ``traceparent``, in place (an unsampled call's: the app's
    ``tracestate`` travels on as it came)."""
    items = headers.items()
    items[:] = [kv for kv in items if kv[0] != "traceparent"]
    items.append(("traceparent", value))


def drop_tracestate(headers: Headers) -> None:
    """Remove the app's ``tracestate``, in place: it belongs to a trace the call does not
    continue (its ``traceparent`` was missing or malformed)."""
    items = headers.items()
    items[:] = [kv for kv in items if kv[0] != "tracestate"]

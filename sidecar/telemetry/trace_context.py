"""W3C Trace Context on the wire: the app's ``traceparent``/``tracestate`` in, ours out.

:func:`remote_parent` turns the app's headers (HTTP headers or gRPC metadata: the same
:class:`~sidecar.exchange.Headers`) into the parent context of the call's SERVER span, or an
empty context when the app sent none or a malformed one (a new trace). :func:`inject` writes a
span's context toward the upstream, replacing whatever the app sent, so the upstream's parent
is the sidecar's CLIENT span. ``baggage`` is not touched: the sidecar adds no entries, so the
app's header travels on unchanged.

Written here rather than through the OTel propagator API so the request path pays one regular
expression and no contextvar (the propagators read and write the current context).
"""

from __future__ import annotations

__all__ = ["EMPTY", "inject", "remote_parent", "traceparent"]

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

# version, trace id, parent id, flags; a future version may append fields after a "-"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
#: the headers :func:`inject` owns toward the upstream.
_OURS = frozenset({"traceparent", "tracestate"})


def remote_parent(headers: Headers) -> Context:
    """The app's span as a remote parent, or :data:`EMPTY` (start a new trace)."""
    value = headers.get("traceparent")
    if value is None:
        return EMPTY
    m = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if m is None:
        return EMPTY
    version, trace_hex, span_hex, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return EMPTY
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return EMPTY  # all-zero ids are invalid
    state = None
    if "tracestate" in headers:
        # several tracestate fields are one list (RFC 9110 §5.3); a malformed one is dropped
        state = TraceState.from_header(headers.get_all("tracestate"))
    parent = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags, 16)), trace_state=state
    )
    return set_span_in_context(NonRecordingSpan(parent), EMPTY)


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

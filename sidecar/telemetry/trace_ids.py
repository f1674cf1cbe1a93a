"""The call's trace id, shared by the tracing filter (which sets it) and the access log (which
writes it), so neither imports the other.

With tracing on, the ``tracing`` filter stashes the id of the trace the call belongs to (the app's,
continued, or a new one). With tracing off nothing is stashed, and the access log takes the id from
the app's own ``traceparent`` when it sent one (:func:`trace_id_from_traceparent`), so lines still
join up with the app's traces.
"""

from __future__ import annotations

__all__ = ["TRACE_ID", "trace_id_from_traceparent"]

from ..exchange import StashKey

#: 32 lower-case hex digits.
TRACE_ID: StashKey[str] = StashKey("tracing.trace_id")

_HEX = frozenset("0123456789abcdef")


def trace_id_from_traceparent(value: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), ``None`` if it
    is malformed or the all-zero id."""
    if value is None or len(value) < 55 or value[2] != "-" or value[35] != "-":
        return None
    trace_id = value[3:35]
    if not _HEX.issuperset(trace_id) or trace_id == "0" * 32:
        return None
    return trace_id

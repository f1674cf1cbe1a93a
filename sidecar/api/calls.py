"""What a plugin's filter or adapter may tell the core about the call in flight.

Three per-call signals, each a typed stash key the core reads at one place, at most once per
call, and a function that writes it with its bounds checked:

- :func:`log_field`: an extra field on the call's access-log line (``graphql_operation``);
- :func:`name_span`: the name of the call's SERVER span (``query GetUser``);
- :func:`allow_retry`: whether the core retry may send the call again, whatever its method.

A call that uses none of them costs the core one ``exchange.peek`` per reader, which creates
nothing. Not here: what a plugin keeps for itself (its own ``StashKey``), the access log's own
fields, the span's attributes (a plugin's own spans: :func:`~sidecar.api.plugin_tracer`).
"""

from __future__ import annotations

__all__ = [
    "LOG_FIELDS",
    "MAX_LOG_FIELDS",
    "MAX_LOG_VALUE",
    "MAX_SPAN_NAME",
    "RETRY_PERMIT",
    "SPAN_NAME",
    "allow_retry",
    "log_field",
    "name_span",
]

import re

from ..exchange import Exchange, StashKey

#: the call's extra access-log fields, name → value, in the order first set (read by the
#: access log as it writes the line)
LOG_FIELDS: StashKey[dict[str, str]] = StashKey("api.log_fields")
#: the call's SERVER span name (read by the tracing filter when the call's handler returns)
SPAN_NAME: StashKey[str] = StashKey("api.span_name")
#: ``True``: the call may be sent again; ``False``: never (read by retry before the first attempt)
RETRY_PERMIT: StashKey[bool] = StashKey("api.retry_permit")

#: distinct extra fields on one line; more are dropped (a line stays one short line)
MAX_LOG_FIELDS = 8
#: characters of one value kept; the rest is cut
MAX_LOG_VALUE = 256
#: characters of a span name kept; the rest is cut
MAX_SPAN_NAME = 128

#: an extra field's name: lower-case, digits and ``_``, up to 40 characters
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: the access log's own fields (and the log formatter's), never overwritten by a plugin
RESERVED_LOG_FIELDS = frozenset(
    {
        "ts",
        "level",
        "logger",
        "msg",
        "exception",
        "listener",
        "method",
        "path",
        "upstream",
        "route",
        "status",
        "grpc_status",
        "duration_ms",
        "bytes_received",
        "bytes_sent",
        "client",
        "trace_id",
        "attempts",
        "decision",
        "error",
        "aborted",
    }
)


def log_field(exchange: Exchange, name: str, value: str) -> None:
    """Add ``name: value`` to the call's access-log line (after the sidecar's own fields).

    ``name`` is lower-case letters, digits and ``_`` (a letter first, at most 40 characters) and
    not a field the sidecar writes; a bad one raises :class:`ValueError` (a plugin's mistake,
    found by its first test). ``value`` is a ``str``, cut at :data:`MAX_LOG_VALUE` characters
    and JSON-escaped when written. Setting a name again replaces its value; past
    :data:`MAX_LOG_FIELDS` distinct names, new ones are dropped. The line is written when the
    call ends, so set fields before the response is returned. Never log a secret or a request
    body: the line goes wherever the sidecar's logs go.
    """
    if _FIELD_NAME.fullmatch(name) is None or name in RESERVED_LOG_FIELDS:
        raise ValueError(
            f"access-log field name {name!r}: lower-case letters, digits and '_', a letter "
            f"first, at most 40 characters, and not one of the sidecar's own fields"
        )
    if not isinstance(value, str):
        raise TypeError(f"access-log field {name!r}: the value is a str, got {type(value)}")
    stash = exchange.stash
    fields = stash.get(LOG_FIELDS)
    if fields is None:
        fields = stash[LOG_FIELDS] = {}
    elif name not in fields and len(fields) >= MAX_LOG_FIELDS:
        return
    fields[name] = value[:MAX_LOG_VALUE]


def name_span(exchange: Exchange, name: str) -> None:
    """Name the call's SERVER span ``name`` (cut at :data:`MAX_SPAN_NAME` characters), as
    OpenTelemetry's conventions name a span by what the call did: ``query GetUser``.

    The tracing filter renames the span once the chain inside it has returned the response (or
    raised), so a filter or an adapter sets it before then; the last name set wins. Without
    tracing, or for a call not sampled, it is a stash entry nobody reads. Keep names of low
    cardinality (an operation's name, never an id or a value from the request).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a span name is a non-empty str")
    exchange.stash[SPAN_NAME] = name[:MAX_SPAN_NAME]


def allow_retry(exchange: Exchange, allowed: bool) -> None:
    """Say whether the sidecar's retry may send this call again: ``False`` never (a call the
    upstream must not receive twice, whatever its method), ``True`` whatever its method (the
    plugin knows repeating it is safe). It replaces the method / ``Idempotency-Key`` /
    ``retry.non_idempotent`` rule for this call only; the rest (``retry.on``, attempts, the
    body buffer, the deadline, the budget) still decides. Set it in a filter the call passes
    before the retry filter (phases up to ``EXTEND``): retry reads it once, before the first
    attempt. A call refused a retry this way counts as ``non_idempotent`` in
    ``sidecar_retries_skipped_total``.
    """
    exchange.stash[RETRY_PERMIT] = bool(allowed)

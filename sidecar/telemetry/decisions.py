"""Sidecar decisions that did not end the call: a rate-limit wait, a shadow limit that would have
refused it, a rate-limit backend that could not answer and let it through.

The filter that decides notes it on the exchange (:func:`note`); the access log writes what was
noted as ``decision`` (comma-separated when a call carried several, in the order they were
made), so an operator can tell why a call was slow or would have been refused. Only those paths
pay for it (they create the stash); an ordinary call notes nothing. Values are fixed strings,
``<filter>:<what>`` (:data:`RATE_LIMIT_WAIT`...), never anything from the request.

Not here: decisions that end the call (a 429, an open breaker): those raise a
:class:`~sidecar.errors.SidecarError` and the access log writes its code as ``error``. A retried
call is not a decision here either: the access log's ``attempts`` says it.
"""

from __future__ import annotations

__all__ = [
    "DECISION",
    "GLOBAL_RATE_LIMIT_FAIL_OPEN",
    "GLOBAL_RATE_LIMIT_SHADOW",
    "RATE_LIMIT_SHADOW",
    "RATE_LIMIT_WAIT",
    "note",
]

from ..exchange import Exchange, StashKey

#: the decisions a call carried so far, comma-separated.
DECISION: StashKey[str] = StashKey("telemetry.decision")

#: the local bucket was empty; the call waited for a token (``on_limit: wait``), then went.
RATE_LIMIT_WAIT = "rate_limit:wait"
#: the local bucket would have refused the call (``shadow: true``); it went.
RATE_LIMIT_SHADOW = "rate_limit:shadow"
#: the global limit would have refused the call (``shadow: true``); it went.
GLOBAL_RATE_LIMIT_SHADOW = "global_rate_limit:shadow"
#: the rate-limit backend did not answer in time; its ``on_error: allow`` let the call go.
GLOBAL_RATE_LIMIT_FAIL_OPEN = "global_rate_limit:fail_open"


def note(exchange: Exchange, decision: str) -> None:
    """Record ``decision`` (one of this module's constants) on the call."""
    have = exchange.peek(DECISION)
    exchange.stash[DECISION] = decision if have is None else f"{have},{decision}"

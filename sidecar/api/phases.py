"""Where a filter sits in every chain: named phases, outermost first, and the rules between them.

A chain is ``rescue ∘ observe ∘ admit ∘ extend ∘ resilience ∘ attempt ∘ adapter``. Each phase
owns a range of places (``order``, lower is outer); a filter registers in a phase
(``registry.add(name, factory, phase=Phase.ADMIT)``, which puts it inside the built-in filters of
that phase) or, where the order inside the phase matters, right after or before a named filter
(``after="rate_limit"``). The numbers are an implementation detail: plugins name a phase.

- ``RESCUE``: turns every error into an answer, so it sees everything below it.
- ``OBSERVE``: the access log, the SERVER span and the metrics. They record what the app got,
  each decision below included; a retried call is one call here.
- ``ADMIT``: decisions about whether the call goes on at all (peer allow-list, inbound
  signatures, rate limits, the concurrency limit), cheapest first. A call refused here costs no
  deadline, no attempt and no credential; one admitted holds its concurrency slot through every
  attempt.
- ``EXTEND``: plugin filters by default; they see an admitted call once, whatever its retries.
- ``RESILIENCE``: the overall deadline, then injected faults (only where configured), then
  retry, then the circuit breaker. The deadline bounds every attempt and every wait between them
  (an injected delay too); each attempt passes the breaker, and an open breaker ends the retries;
  an injected abort is neither retried nor counted by the breaker.
- ``ATTEMPT``: what runs once per attempt, right above the adapter: the credential (taken when
  the attempt is sent), the CLIENT span, the verified identity header, configured headers (last,
  so nothing above can undo them).

The rules a chain must keep (:data:`INVARIANTS`) are checked by the test suite, one test each.
"""

from __future__ import annotations

__all__ = [
    "INVARIANTS",
    "ORDER_ACCESS_LOG",
    "ORDER_AUTH",
    "ORDER_CIRCUIT_BREAKER",
    "ORDER_CONCURRENCY",
    "ORDER_DEFAULT",
    "ORDER_FAULT",
    "ORDER_GLOBAL_RATE_LIMIT",
    "ORDER_IDENTITY_HEADER",
    "ORDER_METRICS",
    "ORDER_PEER_ALLOW",
    "ORDER_RATE_LIMIT",
    "ORDER_REQUEST_HEADERS",
    "ORDER_RESCUE",
    "ORDER_RETRY",
    "ORDER_TIMEOUT",
    "ORDER_TRACING",
    "ORDER_UPSTREAM_SPAN",
    "ORDER_VERIFY_HMAC",
    "Invariant",
    "Phase",
    "phase_of",
]

from dataclasses import dataclass
from enum import IntEnum


class Phase(IntEnum):
    """The phases of a chain, outermost first; the value is where the phase starts."""

    RESCUE = 0
    OBSERVE = 100
    ADMIT = 310
    EXTEND = 500
    RESILIENCE = 800
    ATTEMPT = 860


#: Where each phase ends (exclusive).
_END = {
    Phase.RESCUE: 100,
    Phase.OBSERVE: 310,
    Phase.ADMIT: 500,
    Phase.EXTEND: 800,
    Phase.RESILIENCE: 860,
    Phase.ATTEMPT: 1000,
}


def phase_of(order: int) -> Phase:
    """The phase a place belongs to."""
    for phase in reversed(Phase):
        if order >= phase:
            return phase
    return Phase.RESCUE


def phase_range(phase: Phase) -> range:
    """The places of ``phase``."""
    return range(int(phase), _END[phase])


# The built-in filters' places (what ``after=``/``before=`` resolve to).
ORDER_RESCUE = Phase.RESCUE + 0
ORDER_ACCESS_LOG = Phase.OBSERVE + 0
ORDER_TRACING = Phase.OBSERVE + 100
ORDER_METRICS = Phase.OBSERVE + 200
ORDER_PEER_ALLOW = Phase.ADMIT + 0
ORDER_VERIFY_HMAC = Phase.ADMIT + 10
ORDER_RATE_LIMIT = Phase.ADMIT + 40
ORDER_GLOBAL_RATE_LIMIT = Phase.ADMIT + 50
ORDER_CONCURRENCY = Phase.ADMIT + 90
ORDER_DEFAULT = Phase.EXTEND + 0
ORDER_TIMEOUT = Phase.RESILIENCE + 0
ORDER_FAULT = Phase.RESILIENCE + 10
ORDER_RETRY = Phase.RESILIENCE + 20
ORDER_CIRCUIT_BREAKER = Phase.RESILIENCE + 40
ORDER_AUTH = Phase.ATTEMPT + 0
ORDER_UPSTREAM_SPAN = Phase.ATTEMPT + 20
ORDER_IDENTITY_HEADER = Phase.ATTEMPT + 30
ORDER_REQUEST_HEADERS = Phase.ATTEMPT + 40


@dataclass(frozen=True, slots=True)
class Invariant:
    """``outer`` runs outside ``inner`` in every chain that has both, because ``why``."""

    outer: str
    inner: str
    why: str


#: The order rules between built-in filters, outermost pair first: ``outer`` runs outside
#: ``inner`` in every chain that has both. Each is shown by a behavioural test of its own
#: (tests/unit/test_chain_invariants.py), and the built-in registrations are checked against
#: every one.
INVARIANTS: tuple[Invariant, ...] = (
    Invariant("rescue", "access_log", "a rescued error still gets its access-log line"),
    Invariant("access_log", "tracing", "a call the tracing filter fails still gets its line"),
    Invariant("tracing", "metrics", "the SERVER span covers the whole call"),
    Invariant("metrics", "peer_allow", "a refused peer is counted as what it got"),
    Invariant("metrics", "verify_hmac", "an unsigned call is counted as what it got"),
    Invariant("metrics", "rate_limit", "a 429 is counted as what the app got"),
    Invariant("peer_allow", "rate_limit", "a refused peer takes no token"),
    Invariant("verify_hmac", "rate_limit", "an unsigned call takes no token"),
    Invariant("rate_limit", "global_rate_limit", "a locally refused call costs no round trip"),
    Invariant("global_rate_limit", "concurrency", "a refused call never holds a slot"),
    Invariant("concurrency", "timeout", "a queued wait is not the upstream's deadline"),
    Invariant("concurrency", "retry", "one app call holds one slot, whatever its retries"),
    Invariant("timeout", "retry", "the deadline bounds every attempt and every backoff"),
    Invariant("timeout", "fault", "an injected delay counts against the call's deadline"),
    Invariant("fault", "retry", "an injected abort consumes no retry"),
    Invariant("fault", "circuit_breaker", "an injected abort never trips the real breaker"),
    Invariant("retry", "circuit_breaker", "every attempt passes the breaker"),
    Invariant("circuit_breaker", "auth", "an open breaker refuses before a token is fetched"),
    Invariant("retry", "auth", "every attempt gets a credential taken when it is sent"),
    Invariant("retry", "upstream_span", "each attempt is its own CLIENT span"),
    Invariant("auth", "upstream_span", "the CLIENT span times the request as sent"),
    Invariant("upstream_span", "request_headers", "a traceparent set by config still wins"),
)

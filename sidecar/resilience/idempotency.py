"""Which calls may be sent to the upstream more than once.

A retry repeats a request the upstream may already have acted on (the connection broke after it
read the request, a per-try timeout cut a slow answer). RFC 9110 §9.2.2 names the methods for
which that is harmless: GET, HEAD, OPTIONS, TRACE, PUT and DELETE. Anything else (POST, PATCH,
methods we do not know) is retried only when the app made it safe with an ``Idempotency-Key``
header (the IETF draft Stripe and others follow: the upstream deduplicates by key) or the operator
said so with ``retry.non_idempotent: true``. Not here: whether the body can be replayed
(:mod:`.replay`).
"""

from __future__ import annotations

__all__ = ["IDEMPOTENT_METHODS", "may_repeat"]

from ..exchange import Exchange

#: methods whose repetition has the effect of one call (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def may_repeat(exchange: Exchange, non_idempotent: bool = False) -> bool:
    """Whether sending ``exchange`` twice is safe: an idempotent method, an ``Idempotency-Key``,
    or ``non_idempotent`` (the route or upstream allows any method)."""
    return (
        non_idempotent
        or exchange.method in IDEMPOTENT_METHODS
        or "idempotency-key" in exchange.headers
    )

"""Which calls may be sent to the upstream more than once.

A retry repeats a request the upstream may already have acted on (the connection broke after it
read the request, a per-try timeout cut a slow answer). RFC 9110 §9.2.2 names the methods for
which that is harmless: GET, HEAD, OPTIONS, TRACE, PUT and DELETE. Anything else (POST, PATCH,
methods we do not know) is retried only when the app made it safe with an ``Idempotency-Key``
header (the IETF draft Stripe and others follow: the upstream deduplicates by key) or the operator
said so with ``retry.non_idempotent: true``. Not here: whether the body can be replayed
(:mod:`.replay`).

**gRPC calls are not judged here.** Every gRPC call is an HTTP POST, so this rule would never
retry one; gRFC A6 decides by status code instead: a code such as UNAVAILABLE means the server did
not act on the call, so the codes an operator lists in ``retry.on`` are what makes a gRPC retry
safe (adding ``aborted`` or ``resource-exhausted`` there is saying the service's methods may be
repeated after them). The retry filter of a ``grpc`` listener's route never calls this module.
"""

from __future__ import annotations

__all__ = ["IDEMPOTENT_METHODS", "may_repeat"]

from typing import Final

from ..exchange import Exchange

#: methods whose repetition has the effect of one call (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def may_repeat(exchange: Exchange, non_idempotent: bool = False) -> bool:
    """Whether sending ``exchange`` twice is safe: an idempotent method, an ``Idempotency-Key``,
    or ``non_idempotent`` (the route or upstream allows any method)."""
    return (
        non_idempotent
        or exchange.method in IDEMPOTENT_METHODS
        or "idempotency-key" in exchange.headers
    )

"""``circuit_breaker``: stop calling an upstream that keeps failing, and find out when it is back.

One :class:`~sidecar.resilience.breaker.CircuitBreaker` per upstream, shared by all its routes
and kept across reloads while ``circuit_breaker`` is unchanged. It sits inside ``retry`` (each
attempt passes it, and an open breaker ends the retries: ``circuit_open`` is no retry condition)
and outside the adapter, so it judges what the upstream did:

- a response or error whose conditions (the adapter's classifier, :mod:`sidecar.outcomes`) meet
  ``failure_on`` is a failure; any other response is a success;
- a call cancelled past ``exchange.deadline`` (the ``timeout`` filter cut it) is a ``timeout``;
- an error with no condition (a sidecar decision such as the pool's ``overloaded``) and a call
  the app cancelled say nothing about the upstream: nothing is counted, a trial slot is freed.
  Rate limits and load shedding are decided above this filter and never reach it.

Open, a call gets 503 ``circuit_open`` with ``Retry-After`` at once, without touching the
upstream. Each transition is logged once (``sidecar.circuit_breaker``, with upstream, from, to and
reason) and counted in ``sidecar_circuit_transitions_total``; ``sidecar_circuit_state`` and
``/upstreams`` read the breaker's state when asked.

A closed breaker costs a call two attribute reads, the admitted generation kept on the exchange
and taken back, and one method call; the clock is read only on failures (and per call when a
``failure_ratio`` window is configured). It is an observer (:mod:`sidecar.observing`): the
``retry`` filter right above it runs its steps within its own coroutine frame.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from ..api import RouteContext, SharedKey
from ..chain import Filter
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..observing import Observer, Observing
from ..outcomes import Classifier, classify_http
from ..resilience.breaker import CircuitBreaker

log = logging.getLogger("sidecar.circuit_breaker")

#: the ``shared`` kind (and the key under ``/upstreams`` → ``policies``).
BREAKER: Final[SharedKey[CircuitBreaker]] = SharedKey("circuit_breaker")

#: timer slack: asyncio may run a deadline's callback this much before the deadline itself.
_DEADLINE_SLACK: Final = 0.002


def make_breaker(ctx: RouteContext) -> CircuitBreaker:
    upstream = ctx.upstream_name
    counter = ctx.metrics.circuit_transitions

    def transition(was: str, to: str, reason: str) -> None:
        counter.labels(upstream, to).inc()  # rare: resolving the child here costs nothing
        level = logging.WARNING if to == "open" else logging.INFO
        log.log(
            level,
            f"circuit breaker {to}",
            extra={"fields": {"upstream": upstream, "from": was, "to": to, "reason": reason}},
        )

    return CircuitBreaker(upstream, ctx.upstream.circuit_breaker, on_transition=transition)


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.circuit_breaker
    if not policy.enabled:
        return None
    breaker = ctx.shared(BREAKER, policy, lambda: make_breaker(ctx))
    # an observer (sidecar.observing): ``retry`` right above runs its steps in its own frame
    return Observing((_Judge(breaker, ctx.classify, frozenset(policy.failure_on)),))


class _Judge(Observer):
    """Admits each attempt (open: ``CircuitOpen``), then tells the breaker what it did."""

    def __init__(
        self, breaker: CircuitBreaker, classify: Classifier, failing: frozenset[str]
    ) -> None:
        self.breaker = breaker
        self.classify = classify
        #: the HTTP classifier, called by its name: a direct call, compiled
        self.http = classify is classify_http
        self.failing = failing
        self.timeout_fails = "timeout" in failing

    def begin(self, exchange: Exchange) -> None:
        breaker = self.breaker
        # closed: no call, no clock; open or half-open: admit() decides (raises CircuitOpen).
        # The generation the attempt was admitted in is kept on the exchange (one breaker per
        # chain; retry's attempts pass it one after another)
        exchange._admitted = breaker.admit() if breaker.state else breaker.generation

    def ok(self, exchange: Exchange, resp: Response) -> None:
        gen = exchange._admitted
        exchange._admitted = -1
        conditions = classify_http(resp, None) if self.http else self.classify(resp, None)
        if conditions and not self.failing.isdisjoint(conditions):
            self.breaker.failure(gen, conditions[0])
        else:
            self.breaker.success(gen)

    def error(self, exchange: Exchange, e: BaseException) -> None:
        gen = exchange._admitted
        exchange._admitted = -1
        breaker = self.breaker
        if isinstance(e, SidecarError):
            conditions = self.classify(None, e)
            if not conditions:
                breaker.release(gen)  # the sidecar's own decision: no verdict on the upstream
            elif self.failing.isdisjoint(conditions):
                breaker.success(gen)
            else:
                breaker.failure(gen, conditions[0])
        elif isinstance(e, asyncio.CancelledError):
            deadline = exchange.deadline
            if (
                self.timeout_fails
                and deadline is not None
                and asyncio.get_running_loop().time() >= deadline - _DEADLINE_SLACK
            ):
                breaker.failure(gen, "timeout")  # the overall deadline cut the call
            else:
                breaker.release(gen)  # the app went away
        else:
            breaker.release(gen)  # a bug below; rescue reports it, the upstream is not to blame

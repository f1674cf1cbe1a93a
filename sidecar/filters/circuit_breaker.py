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

A closed breaker costs a call two attribute reads, a ``try`` and one method call; the clock is
read only on failures (and per call when a ``failure_ratio`` window is configured).
"""

from __future__ import annotations

import asyncio
import logging

from ..api import RouteContext, SharedKey
from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..resilience.breaker import CircuitBreaker

log = logging.getLogger("sidecar.circuit_breaker")

#: the ``shared`` kind (and the key under ``/upstreams`` → ``policies``).
BREAKER: SharedKey[CircuitBreaker] = SharedKey("circuit_breaker")

#: timer slack: asyncio may run a deadline's callback this much before the deadline itself.
_DEADLINE_SLACK = 0.002


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
    classify = ctx.classify
    failing = frozenset(policy.failure_on)
    timeout_fails = "timeout" in failing
    success, failure, release, admit = (
        breaker.success,
        breaker.failure,
        breaker.release,
        breaker.admit,
    )

    async def circuit_breaker(exchange: Exchange, call_next: Handler) -> Response:
        # closed: no call, no clock; open or half-open: admit() decides (raises CircuitOpen)
        gen = admit() if breaker.state else breaker.generation
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            conditions = classify(None, e)
            if not conditions:
                release(gen)  # the sidecar's own decision: no verdict on the upstream
            elif failing.isdisjoint(conditions):
                success(gen)
            else:
                failure(gen, conditions[0])
            raise
        except asyncio.CancelledError:
            deadline = exchange.deadline
            if (
                timeout_fails
                and deadline is not None
                and asyncio.get_running_loop().time() >= deadline - _DEADLINE_SLACK
            ):
                failure(gen, "timeout")  # the overall deadline cut the call
            else:
                release(gen)  # the app went away
            raise
        except BaseException:
            release(gen)  # a bug below; rescue reports it, the upstream is not to blame
            raise
        conditions = classify(resp, None)
        if conditions and not failing.isdisjoint(conditions):
            failure(gen, conditions[0])
        else:
            success(gen)
        return resp

    return circuit_breaker

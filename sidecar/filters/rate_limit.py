"""``rate_limit``: the local token bucket of an upstream, or of a route that overrides it.

``rate`` calls per second with ``burst`` at once, counted per ``key``
(:mod:`sidecar.ratelimit.keys`) in this process only. Past the limit, ``on_limit: reject``
answers 429 ``rate_limited`` at once with ``Retry-After`` and the IETF ``RateLimit-Policy`` /
``RateLimit`` fields (:mod:`sidecar.ratelimit.headers`); ``on_limit: wait`` books the next token
and waits for it when it comes within ``max_wait`` (and the call's deadline), with at most
``max_waiting`` calls waiting at once, else 429. ``shadow: true`` decides the same way but only
counts: nothing is refused, delayed or booked.

The buckets belong to the policy, not to the route: every route of the upstream shares them
(``RouteContext.shared``), and a reload that leaves the policy unchanged keeps them. A route with
its own ``rate_limit`` has its own buckets. Every limited call counts in
``sidecar_rate_limited_total{scope="local", mode=reject|wait|shadow}``.

Sits in the admit phase: inside ``metrics``/``access_log`` so a 429 is counted and
logged, outside the concurrency limit and the deadline so a refused call never takes a slot and
the wait is its own (``max_wait``).
"""

from __future__ import annotations

__all__ = ["LocalLimiter", "factory", "make_filter"]

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..api import RouteContext, SharedKey
from ..chain import Filter, Handler
from ..config.policies import RateLimitPolicy
from ..errors import RateLimited
from ..exchange import Exchange, Response
from ..observing import Observer, Observing
from ..ratelimit.bucket import TokenBuckets
from ..ratelimit.headers import limited_headers, policy_field
from ..ratelimit.keys import key_function
from ..telemetry.decisions import RATE_LIMIT_SHADOW, RATE_LIMIT_WAIT, note
from ..telemetry.metrics import Metrics

POLICY_NAME: Final = "local"


class LocalLimiter:
    """The buckets of one ``rate_limit`` policy and the calls waiting on them."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.buckets = TokenBuckets(policy.rate.per_second, policy.bucket_size, policy.max_keys)
        self.clock = clock
        self.sleep = sleep
        self.waiting = 0

    def describe(self) -> dict[str, Any]:
        p = self.policy
        return {
            "rate": str(p.rate),
            "burst": p.bucket_size,
            "key": p.key,
            "keys": len(self.buckets),
            "on_limit": p.on_limit,
            "waiting": self.waiting,
            "shadow": p.shadow,
        }


def make_filter(limiter: LocalLimiter, metrics: Metrics, upstream: str, route: str) -> Filter:
    """The filter of one route over ``limiter`` (children and key function resolved here)."""
    p = limiter.policy
    buckets, clock = limiter.buckets, limiter.clock
    key_of = key_function(p.key, route)
    counted = metrics.rate_limited
    rejected = counted.labels(upstream, route, "local", "reject").inc
    shadowed = counted.labels(upstream, route, "local", "shadow").inc
    waited = counted.labels(upstream, route, "local", "wait").inc
    policy = policy_field(POLICY_NAME, p.rate)
    detail = f"local rate limit of {p.rate} (burst {p.bucket_size}) reached"

    def refuse(wait: float) -> RateLimited:
        rejected()
        return RateLimited(detail, headers=limited_headers(POLICY_NAME, policy, wait))

    # The reject and shadow modes decide before the call and do nothing after it: observers
    # (sidecar.observing), fused with the filters around them into one coroutine frame. A
    # refusal is raised where the call enters the filter, as a coroutine filter's would be.
    if p.shadow or p.on_limit == "reject":
        return Observing((_Bucket(buckets, clock, key_of, refuse, shadowed if p.shadow else None),))

    max_wait, max_waiting, sleep = p.max_wait, p.max_waiting, limiter.sleep

    async def rate_limit_wait(exchange: Exchange, call_next: Handler) -> Response:
        key = key_of if isinstance(key_of, str) else key_of(exchange)
        now = clock()
        if limiter.waiting >= max_waiting:
            # no room to wait: only a token that is there now will do
            wait = buckets.take(key, now)
            if wait:
                raise refuse(wait)
            return await call_next(exchange)
        wait = buckets.reserve(key, now, max_wait)
        if wait == 0.0:
            return await call_next(exchange)
        if wait < 0.0:
            raise refuse(-wait)
        deadline = exchange.deadline
        if deadline is not None and wait > deadline - asyncio.get_running_loop().time():
            buckets.refund(key)  # it would time out waiting: refuse now, keep the token
            raise refuse(wait)
        limiter.waiting += 1
        try:
            await sleep(wait)
        except BaseException:
            buckets.refund(key)  # the app went away: the booked token is not used
            raise
        finally:
            limiter.waiting -= 1
        waited()
        note(exchange, RATE_LIMIT_WAIT)  # the access log's "decision"
        return await call_next(exchange)

    return rate_limit_wait


#: The upstream's bucket (one per route for a route with its own limit).
LIMITER: Final[SharedKey[LocalLimiter]] = SharedKey("rate_limit")


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.rate_limit
    if policy is None or not policy.enabled:
        return None
    own = ctx.route_config is not None and ctx.route_config.rate_limit is not None
    limiter = ctx.shared(LIMITER, policy, lambda: LocalLimiter(policy), per_route=own)
    return make_filter(limiter, ctx.metrics, ctx.upstream_name, ctx.route)


class _Bucket(Observer):
    """A token per call from the route's buckets; without one, refused (or, in shadow mode,
    only counted and noted)."""

    def __init__(
        self,
        buckets: TokenBuckets,
        clock: Callable[[], float],
        key_of: str | Callable[[Exchange], str],
        refuse: Callable[[float], RateLimited],
        shadowed: Callable[[], None] | None,
    ) -> None:
        #: the buckets themselves, not their bound ``take``: compiled, a method call on them is
        #: a direct one
        self.buckets = buckets
        self.clock = clock
        #: one bucket for every call (key ``upstream`` or ``route``): nothing to work out
        self.key = key_of if isinstance(key_of, str) else None
        self.key_of = None if isinstance(key_of, str) else key_of
        self.refuse = refuse
        self.shadowed = shadowed

    def begin(self, exchange: Exchange) -> None:
        key = self.key
        if key is None:
            key_of = self.key_of
            assert key_of is not None
            key = key_of(exchange)
        wait = self.buckets.take(key, self.clock())
        if wait:
            shadowed = self.shadowed
            if shadowed is None:
                raise self.refuse(wait)
            shadowed()
            note(exchange, RATE_LIMIT_SHADOW)  # the access log's "decision"

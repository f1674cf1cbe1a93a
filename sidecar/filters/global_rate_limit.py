"""``global_rate_limit``: one limit shared by every replica, decided by a rate-limit backend.

Each call asks the backend named by ``backend`` (``ratelimit_backends.<name>``; Redis runs one
atomic GCRA script per call) whether it may go: refused → 429 ``rate_limited`` with
``Retry-After`` and the IETF ``RateLimit-Policy``/``RateLimit`` fields (policy name
``global``). The backend's time budget and its ``on_error`` rule (fail open by default, or 503
``ratelimit_unavailable``) are applied by :class:`~sidecar.ratelimit.guard.GuardedBackend`,
which also logs outages once and stops asking a failing backend for a while. ``shadow: true``
asks the same question but refuses nothing.

The backend key is ``<upstream>`` (``<upstream>@<route>`` for a route with its own
``global_rate_limit``), plus ``:<value>`` of the policy's ``key`` (``route``, ``peer``, or a
hash of a header's value), so every replica configured alike shares one bucket per key.

Sits in the admit phase, right inside the local ``rate_limit``, so a call the
local bucket already refused costs no backend round trip.
"""

from __future__ import annotations

__all__ = ["GlobalLimiter", "factory", "make_filter"]

from typing import Any

from ..api import Limit, RouteContext, SharedKey
from ..chain import Filter, Handler
from ..config.policies import GlobalRateLimitPolicy
from ..errors import RateLimited, RateLimitUnavailable
from ..exchange import Exchange, Response
from ..ratelimit.guard import GuardedBackend
from ..ratelimit.headers import limited_headers, policy_field
from ..ratelimit.keys import key_function
from ..ratelimit.live import live_backends
from ..telemetry.decisions import GLOBAL_RATE_LIMIT_FAIL_OPEN, GLOBAL_RATE_LIMIT_SHADOW, note
from ..telemetry.metrics import Metrics

POLICY_NAME = "global"


class GlobalLimiter:
    """One ``global_rate_limit`` policy: its backend, limit and key space."""

    def __init__(self, policy: GlobalRateLimitPolicy, backend: GuardedBackend, space: str) -> None:
        self.policy = policy
        self.backend = backend
        self.limit = Limit(policy.rate.per_second, policy.bucket_size)
        #: the backend key every call's key starts with
        self.space = space

    def describe(self) -> dict[str, Any]:
        p = self.policy
        return {
            "backend": self.backend.name,
            "backend_state": "available" if self.backend.available else "unavailable",
            "rate": str(p.rate),
            "burst": p.bucket_size,
            "key": p.key,
            "shadow": p.shadow,
        }


def make_filter(limiter: GlobalLimiter, metrics: Metrics, upstream: str, route: str) -> Filter:
    """The filter of one route over ``limiter`` (children and key function resolved here)."""
    p, limit, guarded = limiter.policy, limiter.limit, limiter.backend
    decide, fail_open = guarded.decide, guarded.fail_open
    part = key_function(p.key, route, hash_values=True)
    space = limiter.space
    const_key = f"{space}:{part}" if isinstance(part, str) and part else space
    counted = metrics.rate_limited
    rejected = counted.labels(upstream, route, "global", "reject").inc
    shadowed = counted.labels(upstream, route, "global", "shadow").inc
    policy = policy_field(POLICY_NAME, p.rate)
    detail = f"global rate limit of {p.rate} (burst {p.bucket_size}) reached"
    unavailable = f"rate-limit backend {guarded.name!r} unavailable (on_error: deny)"
    shadow = p.shadow  # never enforces, not even on_error: deny

    async def global_rate_limit(exchange: Exchange, call_next: Handler) -> Response:
        key = const_key if isinstance(part, str) else f"{space}:{part(exchange)}"
        decision = await decide(key, limit)
        if decision is None:  # no answer in time: the backend's on_error decides
            if fail_open or shadow:
                if fail_open:
                    note(exchange, GLOBAL_RATE_LIMIT_FAIL_OPEN)  # the access log's "decision"
                return await call_next(exchange)
            raise RateLimitUnavailable(unavailable)
        if decision.allowed:
            return await call_next(exchange)
        if shadow:
            shadowed()
            note(exchange, GLOBAL_RATE_LIMIT_SHADOW)  # the access log's "decision"
            return await call_next(exchange)
        rejected()
        raise RateLimited(
            detail, headers=limited_headers(POLICY_NAME, policy, decision.retry_after)
        )

    return global_rate_limit


#: The upstream's limiter (one per route for a route with its own limit).
LIMITER: SharedKey[GlobalLimiter] = SharedKey("global_rate_limit")


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.global_rate_limit
    if policy is None or not policy.enabled:
        return None
    backend = live_backends(ctx.resources).get(
        policy.backend, ctx.config.ratelimit_backends[policy.backend]
    )
    own = ctx.route_config is not None and ctx.route_config.global_rate_limit is not None
    space = f"{ctx.upstream_name}@{ctx.route}" if own else ctx.upstream_name
    limiter = ctx.shared(
        LIMITER, (policy, backend), lambda: GlobalLimiter(policy, backend, space), per_route=own
    )
    return make_filter(limiter, ctx.metrics, ctx.upstream_name, ctx.route)

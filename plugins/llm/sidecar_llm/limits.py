"""Requests and tokens per minute per model group, decided by the configured rate-limit backends.

Each group's ``limits`` names a backend under ``ratelimit_backends`` (``local``: this process;
``redis``: every replica shares one budget). The ``llm_gateway`` filter (:mod:`.handoff`)
resolves those backends when routes are composed and hands them to the adapter in the call's
stash; the adapter asks them once it knows the group.

- Requests: one decision per call, at ``requests_per_minute / 60`` per second with the whole
  minute as burst.
- Tokens: a backend admits *calls*, so tokens are counted in units of 1/:data:`UNITS` of the
  per-minute budget. A call is admitted when one unit is left (and takes it); when its usage is
  known (the answer's end, streamed or not) the rest of its tokens are taken, rounded up. A call
  that overdraws the budget empties it (the overdraft is not carried over): the next calls wait
  for the refill.

A refused call gets 429 in the front's shape with ``Retry-After``. A backend that cannot decide
in time follows its ``on_error`` (``allow`` admits). Keys are
``llm:<upstream>:<group>:req|tok[:<hash of key_header's value>]``: never the value itself.
"""

from __future__ import annotations

__all__ = ["GroupLimiter", "LimitExceeded"]

import asyncio
import hashlib
import math

from sidecar import Exchange, Limit, LiveRateLimitBackend

from .config import Limits

#: a token budget is counted in this many units per minute
UNITS = 100


class LimitExceeded(Exception):
    """A group's budget is spent; ``retry_after`` seconds until the next call may pass."""

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"{what} limit reached")
        self.what = what
        self.retry_after = retry_after


class GroupLimiter:
    """One group's limits over its backend."""

    def __init__(
        self, backend: LiveRateLimitBackend, limits: Limits, upstream: str, group: str
    ) -> None:
        self.backend = backend
        self.key_header = limits.key_header
        self._space = f"llm:{upstream}:{group}"
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = Limit(rpm / 60.0, rpm) if rpm else None
        units = min(UNITS, tpm) if tpm else 0
        self.tokens = Limit(units / 60.0, units) if tpm else None
        #: tokens one unit is worth
        self.unit = tpm / units if tpm else 0.0

    def key(self, exchange: Exchange) -> str:
        if self.key_header is None:
            return self._space
        value = exchange.headers.get(self.key_header) or ""
        return f"{self._space}:{hashlib.sha256(value.encode()).hexdigest()[:24]}"

    async def _take(self, key: str, limit: Limit, what: str) -> None:
        decision = await self.backend.decide(key, limit)
        if decision is None:
            if self.backend.fail_open:
                return
            raise LimitExceeded(what, 1.0)
        if not decision.allowed:
            raise LimitExceeded(what, decision.retry_after)

    async def admit(self, key: str) -> None:
        """Take one request and one token unit, or raise :class:`LimitExceeded`."""
        if self.requests is not None:
            await self._take(f"{key}:req", self.requests, "requests")
        if self.tokens is not None:
            await self._take(f"{key}:tok", self.tokens, "tokens")

    async def charge(self, key: str, tokens: int) -> None:
        """Take the units of ``tokens`` beyond the one taken at admission (best effort: a
        refusal means the budget is empty, which is all an overdraft can do)."""
        limit = self.tokens
        if limit is None or tokens <= 0:
            return
        more = min(math.ceil(tokens / self.unit) - 1, limit.burst)
        if more <= 0:
            return
        # asked together: the Redis backend sends decisions of one loop turn in one round trip
        decide = self.backend.decide
        await asyncio.gather(*(decide(f"{key}:tok", limit) for _ in range(more)))

"""The ``local`` rate-limit backend: global limits decided in this process only.

For a single replica, a laptop, or tests: ``ratelimit_backends.<name>: {type: local}`` gives
``global_rate_limit`` the same behaviour as with Redis (GCRA, ``burst``, keys) without a server,
but nothing is shared with other replicas. Not here: the per-route local token bucket
(``rate_limit``, :mod:`sidecar.filters.rate_limit`), which needs no backend at all.
"""

from __future__ import annotations

__all__ = ["LocalBackend", "LocalOptions"]

import time
from typing import Any

from pydantic import Field

from ..api import Decision, Limit, RateLimitBackend
from ..config.base import Model
from ..config.policies import RateLimitBackendConfig
from .bucket import TokenBuckets


class LocalOptions(Model):
    """Keys of a ``local`` backend beside ``type``."""

    #: buckets kept per limit (least recently used dropped first).
    max_keys: int = Field(100_000, ge=1, le=10_000_000)


class LocalBackend(RateLimitBackend):
    options_model = LocalOptions

    def __init__(self, name: str, config: RateLimitBackendConfig) -> None:
        super().__init__(name, config)
        assert isinstance(self.options, LocalOptions)
        self._max_keys = self.options.max_keys
        self._buckets: dict[Limit, TokenBuckets] = {}

    async def decide(self, key: str, limit: Limit) -> Decision:
        buckets = self._buckets.get(limit)
        if buckets is None:
            buckets = self._buckets[limit] = TokenBuckets(limit.rate, limit.burst, self._max_keys)
        now = time.monotonic()
        wait = buckets.take(key, now)
        if wait:
            return Decision(False, 0, wait)
        return Decision(True, buckets.remaining(key, now))

    def describe(self) -> dict[str, Any]:
        return {"type": self.config.type, "keys": sum(len(b) for b in self._buckets.values())}

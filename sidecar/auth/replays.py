"""Where ``verify_hmac`` remembers what it accepted, to refuse the same call sent again.

What is remembered is the scheme's replay id (the signature for scheme ``sidecar``, the
``webhook-id`` for ``standard-webhooks``), each until its timestamp leaves the ``max_skew``
window: past it the call is refused as stale anyway. Two places:

- :class:`ReplayCache`, in this process: bounded (the oldest forgotten first), free, but each
  replica has its own, so a call replayed to another replica passes;
- :class:`SharedReplays`, in the Redis of a ``ratelimit_backends`` entry (``replay_backend``):
  one atomic ``SET NX`` with an expiry per accepted call, so every replica sharing that Redis
  agrees. When Redis does not answer within the backend's ``timeout`` the call is refused with
  503 ``replay_check_unavailable`` (fail closed: a replay cannot be ruled out; the sender retries).

Not here: deciding whether a call verified (:mod:`.verify` asks only after it did, so forged
calls cannot fill either store).
"""

from __future__ import annotations

__all__ = ["ReplayCache", "SharedReplays"]

import asyncio
from collections import OrderedDict
from typing import Any

from ..errors import ReplayCheckUnavailable
from ..ratelimit.redis_backend import RedisBackend


class ReplayCache:
    """Replay ids accepted recently, each until its timestamp leaves the window (LRU-bounded)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen_before(self, signature: str, now: float, until: float) -> bool:
        """``True`` if ``signature`` was accepted and is still in its window; else remember it
        (until wall time ``until``) and return ``False``."""
        seen = self._seen
        # entries arrive roughly in timestamp order: forget those whose window has passed
        while seen:
            first = next(iter(seen.values()))
            if first >= now:
                break
            seen.popitem(last=False)
        expires = seen.get(signature)
        if expires is not None and expires >= now:
            return True
        seen[signature] = until
        if len(seen) > self.size:
            seen.popitem(last=False)
        return False

    def describe(self) -> dict[str, Any]:
        return {"replay_cache": {"entries": len(self._seen), "max": self.size}}


class SharedReplays:
    """Replay ids in Redis under ``<key_prefix>replay:<space>:<id>``, shared by replicas."""

    def __init__(self, backend: RedisBackend, space: str) -> None:
        self.backend = backend
        self.space = f"replay:{space}:"
        #: the backend's time budget bounds each check (its ``on_error`` is for rate limits)
        self.timeout = backend.config.timeout

    async def first_time(self, replay_id: str, ttl: float) -> bool:
        """``True`` for the first replica to accept ``replay_id`` within ``ttl`` seconds;
        raises :class:`ReplayCheckUnavailable` when Redis has no answer in time."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.backend.claim(self.space + replay_id, ttl)
        except Exception:  # redis-py's errors, OSError, TimeoutError: all mean "no answer"
            raise ReplayCheckUnavailable(
                f"the replay check could not reach ratelimit_backends.{self.backend.name} "
                "in time (fail closed: send again later)"
            ) from None

    def describe(self) -> dict[str, Any]:
        return {"replay_backend": self.backend.name}

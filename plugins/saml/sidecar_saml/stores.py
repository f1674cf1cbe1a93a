"""Bounded, expiring, one-use memory: the AuthnRequests we issued and the assertion IDs seen.

Both are an insertion-ordered dict with a deadline per key and a size cap. Past the cap the
oldest entry is forgotten: for pending requests that only fails a very old login (the browser
starts again); for seen assertions it cannot reopen a replay, because an assertion is accepted
only in answer to a pending request, and each request is taken once. Per process: several
sidecar replicas behind one load balancer need sticky sessions for the login (documented).
"""

from __future__ import annotations

__all__ = ["OneUse"]

import time
from collections import OrderedDict
from collections.abc import Callable


class OneUse:
    """Keys that expire, each taken at most once; at most ``capacity`` kept."""

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._clock = clock
        self._deadlines: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._deadlines)

    def add(self, key: str, ttl: float) -> None:
        """Remember ``key`` for ``ttl`` seconds (expired entries are dropped first)."""
        now = self._clock()
        self._expire(now)
        self._deadlines[key] = now + ttl
        self._deadlines.move_to_end(key)
        while len(self._deadlines) > self._capacity:
            self._deadlines.popitem(last=False)

    def take(self, key: str) -> bool:
        """Whether ``key`` was remembered and alive; it is forgotten either way."""
        deadline = self._deadlines.pop(key, None)
        return deadline is not None and deadline > self._clock()

    def first_use(self, key: str, ttl: float) -> bool:
        """``True`` the first time ``key`` is seen within its ``ttl``; ``False`` after."""
        now = self._clock()
        deadline = self._deadlines.get(key)
        if deadline is not None and deadline > now:
            return False
        self.add(key, ttl)
        return True

    def _expire(self, now: float) -> None:
        # entries are added with one ttl per store, so the oldest expires first: stop at the
        # first live one (bounded work per call on average)
        while self._deadlines:
            key, deadline = next(iter(self._deadlines.items()))
            if deadline > now:
                break
            del self._deadlines[key]

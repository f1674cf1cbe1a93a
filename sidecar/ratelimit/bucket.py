"""Token buckets: ``burst`` tokens refilled at ``rate`` per second, one float of state each.

A bucket is kept in GCRA form (the "theoretical arrival time" of the next request, as in
Envoy's and redis-cell's limiters): admitting a call pushes that time one emission interval
(``1/rate``) forward, and a call is admitted while it stays within ``burst`` intervals of now.
That is exactly a token bucket of size ``burst`` refilled at ``rate``, with one float per key
instead of a (tokens, last refill) pair, and a call may also *reserve* a future token (``wait``
mode) by pushing the time past now.

:class:`TokenBuckets` keeps one bucket per key with a bound on the number of keys: the least
recently used key is dropped first (its next call finds a full bucket, the generous side).
:class:`TokenBucket` is the single-bucket case. Time is whatever clock the caller passes
(``now``), so tests drive it exactly. Not here: what a key is, what a limited call gets
(:mod:`sidecar.filters.rate_limit`), limits shared between replicas (:mod:`.redis_backend`).
"""

from __future__ import annotations

__all__ = ["TokenBucket", "TokenBuckets"]

import math
from collections import OrderedDict


class TokenBuckets:
    """One token bucket per key, at most ``max_keys`` of them (LRU)."""

    __slots__ = ("_eps", "_tat", "burst", "interval", "max_keys", "rate", "span")

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate > 0, burst >= 1 and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        #: seconds one token is worth, and how far ahead of now the buckets may be booked
        self.interval = 1.0 / rate
        self.span = burst * self.interval
        # floating-point slack, so 10 calls at 10/s fit in exactly one second
        self._eps = self.interval * 1e-6
        #: key → theoretical arrival time of its next call (absent: a full bucket)
        self._tat: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tat)

    def _start(self, key: str, now: float) -> float:
        tat = self._tat.get(key)
        if tat is None:
            return now
        self._tat.move_to_end(key)
        return tat if tat > now else now

    def _store(self, key: str, tat: float) -> None:
        tats = self._tat
        tats[key] = tat
        if len(tats) > self.max_keys:
            tats.popitem(last=False)

    def take(self, key: str, now: float) -> float:
        """Take a token if there is one: ``0.0``. Otherwise take nothing and return the seconds
        until there will be one."""
        # _start and _store inlined: every call of a limited route comes here
        tats = self._tat
        tat = tats.get(key)
        if tat is None:
            tat = now
        else:
            if len(tats) > 1:  # one key (per upstream or route): no order to keep
                tats.move_to_end(key)
            if tat < now:
                tat = now
        interval = self.interval
        over = tat + interval - now - self.span
        if over > self._eps:
            return over
        tats[key] = tat + interval
        if len(tats) > self.max_keys:
            tats.popitem(last=False)
        return 0.0

    def reserve(self, key: str, now: float, max_wait: float) -> float:
        """Book the next token if it comes within ``max_wait`` and return the seconds to wait
        for it (``0.0``: one is there now). Past ``max_wait``, book nothing and return ``-wait``
        (negative: refused)."""
        tat = self._start(key, now)
        over = tat + self.interval - now - self.span
        if over <= self._eps:
            over = 0.0
        elif over > max_wait + self._eps:
            return -over
        self._store(key, tat + self.interval)
        return over

    def refund(self, key: str) -> None:
        """Give back one booked token (a waiting call that was cancelled)."""
        tat = self._tat.get(key)
        if tat is not None:
            self._tat[key] = tat - self.interval

    def remaining(self, key: str, now: float) -> int:
        """Tokens in the bucket now."""
        tat = self._tat.get(key)
        if tat is None or tat <= now:
            return self.burst
        return max(0, math.floor((self.span - (tat - now)) / self.interval + 1e-6))


class TokenBucket:
    """A single token bucket (see :class:`TokenBuckets`)."""

    __slots__ = ("_b",)

    def __init__(self, rate: float, burst: int) -> None:
        self._b = TokenBuckets(rate, burst, max_keys=1)

    def take(self, now: float) -> float:
        return self._b.take("", now)

    def reserve(self, now: float, max_wait: float) -> float:
        return self._b.reserve("", now, max_wait)

    def refund(self) -> None:
        self._b.refund("")

    def remaining(self, now: float) -> int:
        return self._b.remaining("", now)

"""The retry budget of one upstream: retries may add at most a ratio of its requests.

Retries help when failures are rare and hurt when the upstream is down: three attempts per call
triple the load on a service that is already failing. The budget (Finagle's and Linkerd's idea)
lets retries through while ``retries ≤ ratio × requests + min_retries`` over a sliding window, so a
failing upstream sees at most ``ratio`` more traffic, and a quiet one (a few calls a minute) still
gets ``min_retries`` per window. Requests are the calls that reached the retry filter, each counted
once however many attempts it made.

The window slides in ``buckets`` steps: counts live in a ring of time buckets and the oldest is
dropped as time moves on, so both checks cost a clock read and a few integer operations. One
object per upstream, shared by its routes (``RouteContext.shared``); the event loop is single
threaded, so no lock. Not here: whether a failure is worth retrying (:mod:`sidecar.filters.retry`).
"""

from __future__ import annotations

__all__ = ["SlidingRetryBudget"]

import math
import time
from collections.abc import Callable
from typing import Any


class SlidingRetryBudget:
    """``record_request()`` per call, ``try_retry()`` before each retry (``False``: no retry)."""

    __slots__ = (
        "_clock",
        "_epoch",
        "_next",
        "_req",
        "_ret",
        "_width",
        "denied",
        "min_retries",
        "ratio",
        "requests",
        "retries",
        "window",
    )

    def __init__(
        self,
        ratio: float,
        min_retries: int,
        window: float,
        *,
        buckets: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_retries = min_retries
        self.window = window
        self._width = window / buckets
        self._req = [0] * buckets
        self._ret = [0] * buckets
        self._clock = clock
        self._epoch = int(clock() / self._width)
        #: when the current bucket ends (clock time): before it, a request skips the roll
        self._next = (self._epoch + 1) * self._width
        #: requests and retries in the window (the sums of the buckets).
        self.requests = 0
        self.retries = 0
        #: retries refused since start (for ``/upstreams``).
        self.denied = 0

    def _advance(self) -> int:
        """Drop the buckets that fell out of the window; the current bucket's index."""
        epoch = int(self._clock() / self._width)
        n = len(self._req)
        if epoch > self._epoch:
            req, ret = self._req, self._ret
            # clear every bucket between the last one used and now (all of them after a pause)
            for e in range(self._epoch + 1, self._epoch + 1 + min(epoch - self._epoch, n)):
                i = e % n
                self.requests -= req[i]
                self.retries -= ret[i]
                req[i] = ret[i] = 0
            self._epoch = epoch
            self._next = (epoch + 1) * self._width
        return self._epoch % n

    def record_request(self) -> None:
        """A call reached the retry filter (counted once, whatever its attempts)."""
        # every call comes here: the bucket roll (a method call) only when the bucket changed
        if self._clock() >= self._next:
            self._advance()
        self._req[self._epoch % len(self._req)] += 1
        self.requests += 1

    def try_retry(self) -> bool:
        """Whether one more retry fits the budget; if so it is counted."""
        i = self._advance()
        if self.retries + 1 > self.ratio * self.requests + self.min_retries:
            self.denied += 1
            return False
        self._ret[i] += 1
        self.retries += 1
        return True

    def describe(self) -> dict[str, Any]:
        """The budget's state for ``/upstreams`` (listed under the kind ``retry_budget``)."""
        self._advance()
        allowed = math.floor(self.ratio * self.requests + self.min_retries)
        return {
            "ratio": self.ratio,
            "min_retries": self.min_retries,
            "window_s": self.window,
            "requests": self.requests,
            "retries": self.retries,
            "available": max(allowed - self.retries, 0),
            "denied_total": self.denied,
        }

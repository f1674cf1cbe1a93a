"""The concurrency limit of one upstream: a counter of calls in flight and a bounded FIFO queue.

Under the limit a call takes a slot by bumping :attr:`ConcurrencyLimiter.in_flight` (the filter
does it inline: no call, no allocation). At the limit, :meth:`ConcurrencyLimiter.wait` either
sheds the call at once (no queue, or the queue is full) or parks it on a future until a slot is
handed over or ``max_wait`` passes. A released slot goes straight to the longest waiter, so a
newcomer never overtakes the queue and ``in_flight`` never exceeds the limit.

Not here: the 503 answer and metrics (:mod:`sidecar.filters.concurrency`); which layer holds a
slot for how long (the filter: until the response head).
"""

from __future__ import annotations

__all__ = ["ConcurrencyLimiter"]

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from ..config.policies import ConcurrencyPolicy
from ..errors import Overloaded

#: a shed call may try again soon: the limit is about this instant's load, not a quota.
_RETRY_AFTER: Final = (("retry-after", "1"),)


class _Timer(Protocol):
    def cancel(self) -> None: ...


#: ``call_later(delay, callback)``; the loop's by default, a fake one in tests.
CallLater = Callable[[float, Callable[[], None]], _Timer]


class ConcurrencyLimiter:
    """In-flight calls to one upstream, at most ``max_in_flight``; ``queue`` more may wait."""

    __slots__ = (
        "_call_later",
        "_on_shed",
        "_waiters",
        "in_flight",
        "limit",
        "max_wait",
        "queue_size",
        "shed",
        "upstream",
    )

    def __init__(
        self,
        upstream: str,
        policy: ConcurrencyPolicy,
        *,
        call_later: CallLater | None = None,
        on_shed: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.limit = policy.max_in_flight
        self.queue_size = policy.queue
        self.max_wait = policy.max_wait
        #: calls holding a slot.
        self.in_flight = 0
        #: calls shed so far, by reason: ``limit`` (at once) and ``max_wait`` (after queueing).
        self.shed = {"limit": 0, "max_wait": 0}
        self._call_later = call_later
        self._on_shed = on_shed
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free (the filter inlines this)."""
        if self.in_flight < self.limit:
            self.in_flight += 1
            return True
        return False

    def release(self) -> None:
        """Give a slot back: to the longest waiter if any, else to the pool of free slots."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # the slot changes hands; in_flight stays
                return
        self.in_flight -= 1

    def full(self) -> BaseException:
        """The refusal of a call finding every slot taken and no room in the queue (counted
        as shed ``limit``): raise it."""
        return self._shed(
            "limit",
            f"{self.in_flight} calls in flight to upstream {self.upstream!r} "
            f"(max_in_flight {self.limit})"
            + (f", {len(self._waiters)} queued" if self.queue_size else ""),
        )

    async def wait(self) -> None:
        """At the limit: wait in the queue for a slot, or raise ``Overloaded``."""
        if self.in_flight < self.limit:  # a slot freed up between the check and here
            self.in_flight += 1
            return
        if len(self._waiters) >= self.queue_size:
            raise self.full()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(fut)
        call_later = self._call_later or loop.call_later
        timer = call_later(self.max_wait, lambda: self._expire(fut))
        try:
            got = await fut
        except asyncio.CancelledError:
            # the app went away while queued; a slot handed over at that instant is passed on
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()
            else:
                self._forget(fut)
            raise
        finally:
            timer.cancel()
        if not got:
            raise self._shed(
                "max_wait",
                f"no free slot for upstream {self.upstream!r} within {self.max_wait:g}s "
                f"(max_in_flight {self.limit})",
            )

    def _expire(self, fut: asyncio.Future[bool]) -> None:
        if not fut.done():
            self._forget(fut)
            fut.set_result(False)

    def _forget(self, fut: asyncio.Future[bool]) -> None:
        try:
            self._waiters.remove(fut)  # O(queue), only when a waiter gives up
        except ValueError:
            pass

    def _shed(self, reason: str, detail: str) -> Overloaded:
        self.shed[reason] += 1
        if self._on_shed is not None:
            self._on_shed(reason)
        return Overloaded(detail, headers=_RETRY_AFTER)

    # --- views ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Live state for ``/upstreams``."""
        out: dict[str, Any] = {
            "max_in_flight": self.limit,
            "in_flight": self.in_flight,
            "shed": dict(self.shed),
        }
        if self.queue_size:
            out["queue"] = {
                "size": self.queue_size,
                "waiting": len(self._waiters),
                "max_wait_s": self.max_wait,
            }
        return out

    def gauges(self) -> tuple[tuple[str, str, float], ...]:
        """Scrape-time gauges (the data path never updates a gauge)."""
        return (
            (
                "sidecar_concurrency_in_flight",
                "Calls holding a concurrency slot of the upstream.",
                float(self.in_flight),
            ),
            (
                "sidecar_concurrency_queued",
                "Calls waiting for a concurrency slot of the upstream.",
                float(len(self._waiters)),
            ),
            (
                "sidecar_concurrency_limit",
                "The upstream's concurrency limit (max_in_flight).",
                float(self.limit),
            ),
        )

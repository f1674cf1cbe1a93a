"""Coarse deadlines: one loop timer per wheel cancels the calls whose deadline has passed.

``asyncio.timeout`` costs about 4 µs per call (a ``Timeout`` object, a ``TimerHandle`` pushed on
the loop's heap, an async enter and exit), a tenth of the proxy's CPU per request, for a deadline
that almost never fires. Here a call joins a bucket of ``tick`` (5 ms) width and leaves it when it
ends: a small object, a set add and a set discard. One loop timer per wheel is armed for the
earliest bucket; when it fires, every call in the due buckets is cancelled and the timer is
re-armed for the next bucket. A deadline fires at most ``tick`` (plus loop latency) late, never
early. Buckets emptied by calls that ended in time are dropped, but for the newest one: calls
one after another (one connection, each call over before the next begins) share it instead of
making and dropping a set each, and at most one empty bucket is ever held. The timer skips
empty buckets and re-arms for the first that still holds a call.

The caller turns the cancellation into its own error, as ``asyncio.timeout`` does, and only when
the deadline was the sole reason for it (``task.uncancel() == 0``): an app that went away at the
same moment stays a cancellation. Not here: what a timeout means to the call (the ``timeout`` and
``retry`` filters decide that).
"""

from __future__ import annotations

__all__ = ["TICK", "Deadline", "DeadlineWheel"]

import asyncio
import heapq

#: bucket width (seconds): how late a deadline may fire at most, before loop latency.
TICK = 0.005
#: a timer may run a hair before its time (the loop's clock resolution): due buckets are those
#: up to this much ahead.
_EARLY = 1e-6


class Deadline:
    """One call's registration: its task, its bucket and whether the deadline fired."""

    __slots__ = ("bucket", "fired", "seconds", "slot", "task")

    def __init__(self, task: asyncio.Task[object], slot: int, bucket: set[Deadline]) -> None:
        self.task = task
        self.slot = slot
        #: the bucket it joined (held: leaving it needs no lookup; a bucket that fired is no
        #: longer the wheel's, and leaving it changes nothing)
        self.bucket = bucket
        self.fired = False
        #: the time the call was given, for the caller's message (set by the caller)
        self.seconds = 0.0


class DeadlineWheel:
    """Deadlines of many calls on one event loop, checked by one timer."""

    __slots__ = (
        "_buckets",
        "_due",
        "_handle",
        "_heap",
        "_loop",
        "_newest",
        "_newest_bucket",
        "tick",
    )

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self._buckets: dict[int, set[Deadline]] = {}
        #: bucket slots in time order (a slot may appear twice or be gone: checked when popped).
        self._heap: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._due: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the bucket made last: kept when emptied, for the next call (see the module); its
        #: slot is -1 once it left the wheel (fired or dropped)
        self._newest = -1
        self._newest_bucket: set[Deadline] = set()

    def add(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object], deadline: float
    ) -> Deadline:
        """Cancel ``task`` once ``loop.time()`` passes ``deadline`` unless :meth:`remove` comes
        first."""
        slot = int(deadline / self.tick) + 1  # the first bucket boundary after the deadline
        if slot == self._newest and loop is self._loop:
            bucket = self._newest_bucket  # calls one after another: the bucket of the last one
        else:
            bucket = self._bucket(loop, slot)
        entry = Deadline(task, slot, bucket)
        bucket.add(entry)
        return entry

    def _bucket(self, loop: asyncio.AbstractEventLoop, slot: int) -> set[Deadline]:
        buckets = self._buckets
        bucket = buckets.get(slot)
        if bucket is None:
            if self._newest >= 0 and not self._newest_bucket:
                del buckets[self._newest]  # the one empty bucket held: it is not the newest now
            self._newest = slot
            bucket = self._newest_bucket = buckets[slot] = set()
            heapq.heappush(self._heap, slot)
            if self._due is None or slot < self._due or loop is not self._loop:
                self._arm(loop, slot)
        elif loop is not self._loop:
            self._arm(loop, slot)  # the kept bucket's timer is on a loop no longer running
        return bucket

    def remove(self, entry: Deadline) -> bool:
        """The call ended: forget it. Returns whether its deadline fired (the task was
        cancelled for it)."""
        bucket = entry.bucket
        bucket.discard(entry)
        if not bucket and entry.slot != self._newest:
            slot = entry.slot
            if self._buckets.get(slot) is bucket:  # not a bucket that fired
                del self._buckets[slot]  # the newest one stays for the next call (see above)
        return entry.fired

    def leave(self, entry: Deadline, cancelled: bool = False) -> bool:
        """The call ended (``cancelled``: by a cancellation): forget it, and if its deadline
        fired, take that cancellation back from its task. Returns whether the deadline was the
        only reason the call was cancelled: then the caller raises its timeout error in place of
        the cancellation, as ``asyncio.timeout`` raises ``TimeoutError``."""
        if not self.remove(entry):
            return False
        return entry.task.uncancel() == 0 and cancelled

    def _arm(self, loop: asyncio.AbstractEventLoop, slot: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop = loop
        self._due = slot
        self._handle = loop.call_at(slot * self.tick, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._handle = self._due = None
        now = (loop.time() + _EARLY) / self.tick
        heap, buckets = self._heap, self._buckets
        while heap and heap[0] <= now:
            bucket = buckets.pop(heapq.heappop(heap), None)
            if bucket:
                for entry in bucket:
                    entry.fired = True
                    entry.task.cancel()
        # buckets emptied by calls that ended in time: drop them, so the next timer is for a
        # bucket that still holds a call
        while heap and not buckets.get(heap[0]):
            buckets.pop(heapq.heappop(heap), None)
        if self._newest not in buckets:
            self._newest = -1  # it fired, or was dropped empty: the next call makes a new one
        if heap:
            self._arm(loop, heap[0])

    def __len__(self) -> int:
        """Calls registered (for tests and leak checks)."""
        return sum(len(b) for b in self._buckets.values())

    @property
    def buckets(self) -> int:
        """Buckets held, the one empty bucket kept included (for leak checks)."""
        return len(self._buckets)

"""The file-backed queue: one directory per upstream, read back whole at start.

The files are :class:`.store.Store`'s (each write fsynced and renamed into place before the app
gets its 202). This module keeps the in-memory index over them: the pending and dead deliveries,
a heap by due time that hands each pending delivery out once when it is due, which bodies are
still needed, and the per-endpoint counts. One sidecar per directory: two sidecars on one
directory would both send every event. Blocking file I/O runs in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from .queue import Added, Counted, HandOut, QueueDown, QueueFull
from .store import Delivery, State, Store

log = logging.getLogger("sidecar.plugin.webhooks")


class FileQueue:
    """A :class:`.queue.Queue` in the directory ``root``."""

    def __init__(
        self, root: Path, max_pending: int, max_dead: int, endpoints: Collection[str]
    ) -> None:
        self.where = str(root)
        #: the configured endpoints: a delivery read back for another one is handed out at
        #: once (the engine makes it dead), not when its retry would have been due
        self.endpoints = set(endpoints)
        self.root = root
        self.max_pending = max_pending
        self.max_dead = max_dead
        self.store: Store
        self._pending: dict[str, Delivery] = {}
        self._dead: dict[str, Delivery] = {}
        self._disabled: set[str] = set()
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        #: msg id → deliveries (pending or dead) that still need its body on disk
        self._bodies_needed: collections.Counter[str] = collections.Counter()
        #: msg id → endpoints, of the adds writing to the disk right now
        self._writing: dict[str, list[str]] = {}
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._counted: Counted = lambda endpoint, state, n: None
        self._task: asyncio.Task[None] | None = None

    async def start(self, hand_out: HandOut, counted: Counted) -> None:
        self._counted = counted
        self.store = await asyncio.to_thread(Store, self.root)
        self._disabled = await asyncio.to_thread(self.store.disabled)
        for delivery in await asyncio.to_thread(self.store.load):
            held = self._pending if delivery.state == "pending" else self._dead
            held[delivery.key] = delivery
            self._bodies_needed[delivery.msg_id] += 1
            self._count(delivery.endpoint, delivery.state, +1)
            if delivery.state == "pending":
                if delivery.endpoint not in self.endpoints:
                    delivery.next_at = min(delivery.next_at, time.time())
                self._schedule(delivery)
        self._task = asyncio.create_task(self._hand_out_due(hand_out))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def add(self, msg_id: str, body: bytes, deliveries: Sequence[Delivery]) -> Added:
        if msg_id in self._writing:  # a repeat arriving while the first one writes
            return Added(self._writing[msg_id], True)
        if self._bodies_needed[msg_id] > 0:
            held = [*self._pending.values(), *self._dead.values()]
            return Added(sorted(d.endpoint for d in held if d.msg_id == msg_id), True)
        chosen = [d for d in deliveries if d.endpoint not in self._disabled]
        if len(self._pending) + len(chosen) > self.max_pending:
            raise QueueFull
        if not chosen:
            return Added([], False)
        endpoints = [d.endpoint for d in chosen]
        self._writing[msg_id] = endpoints
        try:
            await asyncio.to_thread(self.store.add, body, chosen)
        except OSError as e:
            log.error("webhooks queue write failed", extra={"fields": {"reason": e.strerror}})
            raise QueueDown from None
        finally:
            del self._writing[msg_id]
        self._bodies_needed[msg_id] = len(chosen)
        for delivery in chosen:
            self._pending[delivery.key] = delivery
            self._count(delivery.endpoint, "pending", +1)
            self._schedule(delivery)
        return Added(endpoints, False)

    def is_disabled(self, endpoint: str) -> bool:
        return endpoint in self._disabled

    async def set_disabled(self, endpoint: str, disabled: bool) -> None:
        (self._disabled.add if disabled else self._disabled.discard)(endpoint)
        try:
            await asyncio.to_thread(self.store.set_disabled, endpoint, disabled)
        except OSError:
            raise QueueDown from None

    async def body(self, delivery: Delivery) -> bytes:
        try:
            return await asyncio.to_thread(self.store.read_body, delivery.msg_id)
        except OSError:
            raise LookupError(delivery.msg_id) from None

    async def reschedule(self, delivery: Delivery) -> None:
        await self._save(delivery)
        self._schedule(delivery)

    async def delivered(self, delivery: Delivery) -> None:
        if self._pending.pop(delivery.key, None) is not None:
            self._count(delivery.endpoint, "pending", -1)
        await asyncio.to_thread(self.store.remove, delivery)
        await self._release_body(delivery.msg_id)

    async def dead(self, delivery: Delivery) -> None:
        if self._pending.pop(delivery.key, None) is not None:
            self._count(delivery.endpoint, "pending", -1)
        delivery.state = "dead"
        self._dead[delivery.key] = delivery
        self._count(delivery.endpoint, "dead", +1)
        await self._save(delivery)
        while len(self._dead) > self.max_dead:
            oldest = min(self._dead.values(), key=lambda d: d.created)
            del self._dead[oldest.key]
            self._count(oldest.endpoint, "dead", -1)
            await asyncio.to_thread(self.store.remove, oldest)
            await self._release_body(oldest.msg_id)

    async def redeliver(self, key: str, endpoints: set[str]) -> Delivery | None:
        delivery = self._dead.get(key)
        if delivery is None or delivery.endpoint not in endpoints:
            return None
        del self._dead[key]
        self._count(delivery.endpoint, "dead", -1)
        delivery.state, delivery.attempts, delivery.next_at = "pending", 0, time.time()
        self._pending[key] = delivery
        self._count(delivery.endpoint, "pending", +1)
        await self._save(delivery)
        self._schedule(delivery)
        return delivery

    async def listing(self, state: State, limit: int) -> tuple[int, list[Delivery]]:
        held = self._pending if state == "pending" else self._dead
        return len(held), sorted(held.values(), key=lambda d: d.created)[:limit]

    async def counts(self) -> dict[tuple[str, str], int]:
        return {key: n for key, n in self._counts.items() if n}

    async def _save(self, delivery: Delivery) -> None:
        try:
            await asyncio.to_thread(self.store.save, [delivery])
        except OSError as e:
            # memory still holds the new state and acts on it; after a crash the older state
            # on disk only means an attempt is repeated, which at-least-once allows
            log.error("webhooks queue write failed", extra={"fields": {"reason": e.strerror}})

    async def _release_body(self, msg_id: str) -> None:
        """One delivery less needs this body; the last one removes it."""
        left = self._bodies_needed[msg_id] - 1
        if left > 0:
            self._bodies_needed[msg_id] = left
            return
        self._bodies_needed.pop(msg_id, None)
        await asyncio.to_thread(self.store.remove_body, msg_id)

    def _count(self, endpoint: str, state: str, change: int) -> None:
        self._counts[(endpoint, state)] += change
        self._counted(endpoint, state, self._counts[(endpoint, state)])

    def _schedule(self, delivery: Delivery) -> None:
        heapq.heappush(self._heap, (delivery.next_at, next(self._seq), delivery.key))
        self._wake.set()

    async def _hand_out_due(self, hand_out: HandOut) -> None:
        """Hand each pending delivery out once when it is due (it comes back by reschedule)."""
        while True:
            wait: float | None = None
            while self._heap:
                due, _, key = self._heap[0]
                delivery = self._pending.get(key)
                if delivery is None or delivery.next_at != due:
                    heapq.heappop(self._heap)  # delivered, dead or rescheduled meanwhile
                    continue
                wait = due - time.time()
                if wait > 0:
                    break
                heapq.heappop(self._heap)
                hand_out(delivery)
                wait = None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

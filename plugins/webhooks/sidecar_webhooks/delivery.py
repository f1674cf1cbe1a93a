"""The delivery engine of one webhooks upstream: accepts events, keeps them, hands them out.

``accept`` writes one delivery per subscribed endpoint to the durable store before it returns,
so an event the app was told is accepted survives a crash; at start the engine reads the store
back and gives each pending delivery to its endpoint's worker (:mod:`.worker`, which sends,
retries and gives up). Dead deliveries are kept (bounded) for the admin view and redelivery.
The HTTP answer to the app is the adapter's; this module knows nothing of routes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from .metrics import WebhookMetrics
from .store import Delivery, Store
from .worker import EndpointWorker, log

if TYPE_CHECKING:
    from .adapter import Settings

#: seconds stop() waits for accepts still writing to the disk
STOP_WAIT = 5.0


class Stopping(Exception):
    """The engine is being stopped (shutdown, or a reload replacing it)."""


class QueueFull(Exception):
    """More deliveries are pending than ``max_pending`` allows."""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an endpoint URL: its path or query may carry a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class Engine:
    """Accepting, keeping and delivering the events of one webhooks upstream."""

    def __init__(
        self,
        upstream: str,
        settings: Settings,
        metrics: WebhookMetrics,
    ) -> None:
        self.upstream = upstream
        options = self.options = settings.options
        self.metrics = metrics
        self.store = Store(Path(options.store_dir) / upstream)
        self.pending: dict[str, Delivery] = {}
        self.dead: dict[str, Delivery] = {}
        self.workers = {
            name: EndpointWorker(
                self, name, endpoint, settings.secrets[name], settings.urls.get(name)
            )
            for name, endpoint in options.endpoints.items()
        }
        self.session: aiohttp.ClientSession
        self._tasks: list[asyncio.Task[None]] = []
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._stopping = False
        #: msg id → deliveries (pending or dead) that still need its body on disk
        self._bodies_needed: collections.Counter[str] = collections.Counter()
        self._accepting = 0
        #: msg id → endpoints, of the accepts writing to the disk right now
        self._writing: dict[str, list[str]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        for name in self.workers:  # every configured series exists from the start, at 0
            for state in ("pending", "dead"):
                metrics.queued.labels(upstream, name, state).set(0)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trust_env=False, auto_decompress=False
        )
        disabled = await asyncio.to_thread(self.store.disabled)
        for delivery in await asyncio.to_thread(self.store.load):
            (self.pending if delivery.state == "pending" else self.dead)[delivery.key] = delivery
            self._bodies_needed[delivery.msg_id] += 1
            self._counted(delivery, delivery.state, +1)
        for name in disabled & self.workers.keys():
            self.workers[name].disabled = True
        orphans = []
        for delivery in self.pending.values():
            worker = self.workers.get(delivery.endpoint)
            if worker is None:
                orphans.append(delivery)
            else:
                worker.schedule(delivery)
        for delivery in orphans:
            await self.finish(delivery, "dead", "the endpoint is no longer configured")
        self._tasks = [asyncio.create_task(w.run()) for w in self.workers.values()]

    async def stop(self) -> None:
        """Stop sending. Accepts still writing finish first (bounded), so an engine started on
        the same directory afterwards (a reload) reads every accepted delivery back."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT):
                await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.session.close()
        for name in self.workers:  # a later engine sets its own; a removed endpoint shows none
            for state in ("pending", "dead"):
                with contextlib.suppress(KeyError):
                    self.metrics.queued.remove(self.upstream, name, state)

    async def accept(
        self, event_type: str, body: bytes, content_type: str, msg_id: str | None = None
    ) -> tuple[str, list[str], bool]:
        """Queue ``body`` for every enabled endpoint subscribed to ``event_type``, durably;
        returns the message id, the endpoints, and whether it was a repeat: an app-given
        ``msg_id`` whose event is still held (pending or dead) is not queued again. Raises
        QueueFull (or Stopping)."""
        if self._stopping:
            raise Stopping
        if msg_id is not None and msg_id in self._writing:
            return msg_id, self._writing[msg_id], True
        if msg_id is not None and self._bodies_needed[msg_id] > 0:
            held = [*self.pending.values(), *self.dead.values()]
            return msg_id, sorted(d.endpoint for d in held if d.msg_id == msg_id), True
        endpoints = [
            name
            for name, w in self.workers.items()
            if w.endpoint.subscribes(event_type) and not w.disabled
        ]
        if len(self.pending) + len(endpoints) > self.options.max_pending:
            raise QueueFull
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        now = time.time()
        deliveries = [
            Delivery(msg_id, event_type, name, len(body), content_type, created=now, next_at=now)
            for name in endpoints
        ]
        self._accepting += 1
        self._idle.clear()
        self._writing[msg_id] = endpoints  # a repeat arriving while this writes is one
        try:
            await asyncio.to_thread(self.store.add, body, deliveries)
        finally:
            del self._writing[msg_id]
            self._accepting -= 1
            if self._accepting == 0:
                self._idle.set()
        if deliveries:
            self._bodies_needed[msg_id] = len(deliveries)
        for delivery in deliveries:
            self.pending[delivery.key] = delivery
            self._counted(delivery, "pending", +1)
            self.workers[delivery.endpoint].schedule(delivery)
        self.metrics.accepted.labels(self.upstream).inc()
        return msg_id, endpoints, False

    async def finish(self, delivery: Delivery, outcome: str, reason: str | None) -> None:
        """Delivered (the file goes) or dead (it moves to dead/, trimmed to ``max_dead``)."""
        if self.pending.pop(delivery.key, None) is not None:
            self._counted(delivery, "pending", -1)
        if outcome == "delivered":
            await asyncio.to_thread(self.store.remove, delivery)
            await self._release_body(delivery.msg_id)
        else:
            delivery.state = "dead"
            delivery.last_error = reason
            self.dead[delivery.key] = delivery
            self._counted(delivery, "dead", +1)
            await asyncio.to_thread(self.store.save, [delivery])
            log.warning(
                "webhook delivery dead",
                extra={
                    "fields": {
                        "upstream": self.upstream,
                        "endpoint": delivery.endpoint,
                        "delivery": delivery.key,
                        "attempts": delivery.attempts,
                        "reason": reason,
                    }
                },
            )
            while len(self.dead) > self.options.max_dead:
                oldest = min(self.dead.values(), key=lambda d: d.created)
                del self.dead[oldest.key]
                self._counted(oldest, "dead", -1)
                await asyncio.to_thread(self.store.remove, oldest)
                await self._release_body(oldest.msg_id)

    async def _release_body(self, msg_id: str) -> None:
        """One delivery less needs this body; the last one removes it."""
        left = self._bodies_needed[msg_id] - 1
        if left > 0:
            self._bodies_needed[msg_id] = left
            return
        self._bodies_needed.pop(msg_id, None)
        await asyncio.to_thread(self.store.remove_body, msg_id)

    async def redeliver(self, key: str) -> Delivery | None:
        """Move a dead delivery back to pending, due now, its attempts counted afresh."""
        delivery = self.dead.get(key)
        worker = self.workers.get(delivery.endpoint) if delivery is not None else None
        if delivery is None or worker is None:
            return None
        del self.dead[key]
        self._counted(delivery, "dead", -1)
        delivery.state, delivery.attempts, delivery.next_at = "pending", 0, time.time()
        await asyncio.to_thread(self.store.save, [delivery])
        self.pending[key] = delivery
        self._counted(delivery, "pending", +1)
        worker.schedule(delivery)
        return delivery

    async def enable(self, endpoint: str) -> bool:
        """Turn an endpoint a 410 disabled back on."""
        worker = self.workers.get(endpoint)
        if worker is None:
            return False
        worker.disabled = False
        await asyncio.to_thread(self.store.set_disabled, endpoint, False)
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "store": str(self.store.root),
            "endpoints": {
                name: {
                    "origin": (
                        origin_of(w.endpoint.url)
                        if isinstance(w.endpoint.url, str)
                        else "(given by reference)"
                    ),
                    "events": list(w.endpoint.events),
                    "disabled": w.disabled,
                    "breaker": "open" if w.open_until > time.time() else "closed",
                    "pending": self._counts[(name, "pending")],
                    "dead": self._counts[(name, "dead")],
                }
                for name, w in self.workers.items()
            },
        }

    def _counted(self, delivery: Delivery, state: str, change: int) -> None:
        """Keep the per-endpoint counts (and their gauge) in step with a state change."""
        key = (delivery.endpoint, state)
        self._counts[key] += change
        if delivery.endpoint in self.workers:
            self.metrics.queued.labels(self.upstream, delivery.endpoint, state).set(
                self._counts[key]
            )

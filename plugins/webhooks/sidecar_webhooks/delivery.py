"""The delivery engine of one webhooks upstream: accepts events and hands due deliveries out.

``accept`` keeps one delivery per subscribed endpoint in the durable queue before it returns,
so an event the app was told is accepted survives a crash; the queue (:mod:`.queue`: a directory
or Redis Streams, chosen by the config) hands each pending delivery back when it is due, and the
engine gives it to its endpoint's worker (:mod:`.worker`, which sends, retries and gives up).
The HTTP answer to the app is the adapter's; this module knows nothing of routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sidecar import deferred

from .file_queue import FileQueue
from .metrics import WebhookMetrics
from .queue import Queue, QueueDown
from .store import Delivery
from .worker import EndpointWorker, log

if TYPE_CHECKING:
    import aiohttp

    from .adapter import Settings
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

#: seconds stop() waits for accepts still writing to the queue
STOP_WAIT = 5.0


class Stopping(Exception):
    """The engine is being stopped (shutdown, or a reload replacing it)."""


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an endpoint URL: its path or query may carry a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def make_queue(upstream: str, settings: Settings, consumer: str) -> Queue:
    """The queue the options ask for: Redis Streams when ``redis`` is set, else a directory."""
    options = settings.options
    if options.redis is not None:
        # imported here: a sidecar whose config has no Redis queue never loads redis-py
        from .redis_queue import RedisQueue

        password = settings.redis_password.get() if settings.redis_password else None
        return RedisQueue(
            upstream, options.redis, password, options.max_pending, options.max_dead, consumer
        )
    assert options.store_dir is not None  # the options allow exactly one of the two
    return FileQueue(
        Path(options.store_dir) / upstream,
        options.max_pending,
        options.max_dead,
        options.endpoints.keys(),
    )


class Engine:
    """Accepting and handing out the events of one webhooks upstream."""

    def __init__(
        self, upstream: str, settings: Settings, metrics: WebhookMetrics, consumer: str
    ) -> None:
        self.upstream = upstream
        options = self.options = settings.options
        self.metrics = metrics
        self.queue = make_queue(upstream, settings, consumer)
        self.workers = {
            name: EndpointWorker(
                self, name, endpoint, settings.secrets[name], settings.urls.get(name)
            )
            for name, endpoint in options.endpoints.items()
        }
        self.session: aiohttp.ClientSession
        self._tasks: list[asyncio.Task[None]] = []
        self._finishing: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._accepting = 0
        self._idle = asyncio.Event()
        self._idle.set()
        for name in self.workers:  # every configured series exists from the start, at 0
            for state in ("pending", "dead"):
                metrics.queued.labels(upstream, name, state).set(0)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trust_env=False, auto_decompress=False
        )
        self._tasks = [asyncio.create_task(w.run()) for w in self.workers.values()]
        await self.queue.start(self._hand_out, self._counted)

    async def stop(self) -> None:
        """Stop sending. Accepts still writing finish first (bounded), so an engine started on
        the same queue afterwards (a reload) finds every accepted delivery."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT):
                await self._idle.wait()
        # the workers first: an attempt cut here is not written, so the queue hands it out
        # again later (at least once), and no worker writes to a queue being closed
        tasks = [*self._tasks, *self._finishing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.queue.stop()
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
        QueueFull, QueueDown or Stopping."""
        if self._stopping:
            raise Stopping
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        now = time.time()
        deliveries = [
            Delivery(msg_id, event_type, name, len(body), content_type, created=now, next_at=now)
            for name, w in self.workers.items()
            if w.endpoint.subscribes(event_type)
        ]
        self._accepting += 1
        self._idle.clear()
        try:
            added = await self.queue.add(msg_id, body, deliveries)
        finally:
            self._accepting -= 1
            if self._accepting == 0:
                self._idle.set()
        if not added.repeat:
            self.metrics.accepted.labels(self.upstream).inc()
        return msg_id, added.endpoints, added.repeat

    def _hand_out(self, delivery: Delivery) -> None:
        """A due delivery goes to its endpoint's worker; one whose endpoint is no longer
        configured (a reload removed it) is dead, redeliverable once it is back."""
        worker = self.workers.get(delivery.endpoint)
        if worker is not None:
            worker.hand(delivery)
            return
        delivery.last_error = "the endpoint is no longer configured"
        task = asyncio.create_task(self.finish(delivery, "dead", delivery.last_error))
        self._finishing.add(task)  # owned: cancelled at stop
        task.add_done_callback(self._finishing.discard)

    async def finish(self, delivery: Delivery, outcome: str, reason: str | None) -> None:
        """Delivered (forgotten) or dead (kept, bounded by ``max_dead``)."""
        if outcome == "delivered":
            await self.queue.delivered(delivery)
            return
        delivery.last_error = reason
        await self.queue.dead(delivery)
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

    async def redeliver(self, key: str) -> Delivery | None:
        """A dead delivery is pending again, due now, its attempts counted afresh."""
        return await self.queue.redeliver(key, set(self.workers))

    async def enable(self, endpoint: str) -> bool:
        """Turn an endpoint a 410 disabled back on."""
        if endpoint not in self.workers:
            return False
        await self.queue.set_disabled(endpoint, False)
        return True

    async def describe(self) -> dict[str, Any]:
        try:
            counts = await self.queue.counts()
        except QueueDown:
            counts = {}
            available = False
        else:
            available = True
        return {
            "store": self.queue.where,
            "available": available,
            "endpoints": {
                name: {
                    "origin": (
                        origin_of(w.endpoint.url)
                        if isinstance(w.endpoint.url, str)
                        else "(given by reference)"
                    ),
                    "events": list(w.endpoint.events),
                    "disabled": self.queue.is_disabled(name),
                    "breaker": "open" if w.open_until > time.time() else "closed",
                    "pending": counts.get((name, "pending"), 0),
                    "dead": counts.get((name, "dead"), 0),
                }
                for name, w in self.workers.items()
            },
        }

    def _counted(self, endpoint: str, state: str, count: int) -> None:
        """The queue's count changed: the gauge follows (for configured endpoints only)."""
        if endpoint in self.workers:
            self.metrics.queued.labels(self.upstream, endpoint, state).set(count)

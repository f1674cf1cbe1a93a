"""The delivery engine of one webhooks upstream: accepts events, sends them, retries, gives up.

``accept`` writes one delivery per subscribed endpoint to the durable store before it returns,
so an event the app was told is accepted survives a crash. Each endpoint has a worker that takes
due deliveries in ``next_at`` order and sends at most ``concurrency`` at once, signed afresh for
each attempt. A 2xx delivers, a 410 disables the endpoint, anything else (refused, timeout, any
other status) is tried again on the retry schedule until the last attempt makes it dead. It
never follows a redirect: deliveries go to configured URLs only. The HTTP answer to the app is
the adapter's; this module knows nothing of routes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import random
import time
import uuid
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp

from sidecar import SecretValue

from .config import Endpoint, RetryPolicy, WebhooksOptions
from .metrics import WebhookMetrics
from .signing import secret_key, sign_headers
from .store import HISTORY, Delivery, Store

log = logging.getLogger("sidecar.plugin.webhooks")


class QueueFull(Exception):
    """More deliveries are pending than ``max_pending`` allows."""


def retry_delay(policy: RetryPolicy, failed_attempts: int, retry_after: float | None) -> float:
    """Seconds until the next attempt after ``failed_attempts`` failures (see RetryPolicy)."""
    cap = float(policy.max_delay)
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    base = min(float(policy.first_delay) * 2.0 ** (failed_attempts - 1), cap)
    jittered = base * random.uniform(1 - policy.jitter, 1 + policy.jitter)  # noqa: S311
    return min(jittered, cap)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds of a ``Retry-After`` header (delay or HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return float(parsedate_to_datetime(value).timestamp()) - now
    except (TypeError, ValueError):
        return None


class EndpointWorker:
    """The due-time queue and the sender of one endpoint."""

    def __init__(
        self, engine: Engine, name: str, endpoint: Endpoint, secrets: Sequence[SecretValue]
    ) -> None:
        self.engine = engine
        self.name = name
        self.endpoint = endpoint
        #: read at each attempt: a secret file that changed is picked up without a reload
        self.secrets = secrets
        self.disabled = False
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(endpoint.concurrency)
        self._sending: set[asyncio.Task[None]] = set()
        self._labels = {
            outcome: engine.metrics.deliveries.labels(engine.upstream, name, outcome)
            for outcome in ("delivered", "retry", "dead", "gone")
        }

    def schedule(self, delivery: Delivery) -> None:
        heapq.heappush(self._heap, (delivery.next_at, next(self._seq), delivery.key))
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._slots.acquire()
                delivery = await self._next_due()
                task = asyncio.create_task(self._attempt(delivery))
                self._sending.add(task)
                task.add_done_callback(self._done)
        finally:
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())

    async def _next_due(self) -> Delivery:
        while True:
            if self._heap:
                due, _, key = self._heap[0]
                delivery = self.engine.pending.get(key)
                if delivery is None or delivery.next_at != due:
                    heapq.heappop(self._heap)  # delivered, dead or rescheduled meanwhile
                    continue
                wait = due - time.time()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    return delivery
            else:
                wait = None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _attempt(self, delivery: Delivery) -> None:
        if self.disabled:
            await self.engine.finish(delivery, "dead", "the endpoint is disabled (it answered 410)")
            return
        now = time.time()
        headers = sign_headers(
            [secret_key(s.get()) for s in self.secrets],
            delivery.msg_id,
            int(now),
            delivery.body,
            hex_form=self.endpoint.hex_signature,
        )
        headers["content-type"] = delivery.content_type
        status: int | None = None
        retry_after: float | None = None
        try:
            async with self.engine.session.post(
                self.endpoint.url,
                data=delivery.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout),
            ) as answer:
                status = answer.status
                retry_after = parse_retry_after(answer.headers.get("retry-after"), now)
                await answer.content.readany()  # a bounded look; the body is not kept
            error = None if 200 <= status < 300 else f"answered {status}"
        except TimeoutError:
            error = f"no answer within {self.endpoint.timeout:g}s"
        except aiohttp.ClientConnectorError:
            error = "connection refused or unreachable"
        except aiohttp.ClientError as e:
            error = f"connection failed: {type(e).__name__}"
        delivery.attempts += 1
        delivery.history.append({"at": now, "status": status, "error": error})
        del delivery.history[:-HISTORY]
        delivery.last_error = error
        if error is None:
            self._labels["delivered"].inc()
            await self.engine.finish(delivery, "delivered", None)
        elif status == 410:
            self._labels["gone"].inc()
            self.disabled = True
            await asyncio.to_thread(self.engine.store.set_disabled, self.name, True)
            log.warning(
                "webhook endpoint answered 410 Gone: disabled",
                extra={"fields": {"upstream": self.engine.upstream, "endpoint": self.name}},
            )
            await self.engine.finish(delivery, "dead", "the endpoint answered 410: disabled")
        elif delivery.attempts >= self.engine.options.retry.attempts:
            self._labels["dead"].inc()
            await self.engine.finish(delivery, "dead", error)
        else:
            self._labels["retry"].inc()
            delay = retry_delay(self.engine.options.retry, delivery.attempts, retry_after)
            delivery.next_at = time.time() + delay
            await asyncio.to_thread(self.engine.store.save, [delivery])
            self.schedule(delivery)


class Engine:
    """Accepting, keeping and delivering the events of one webhooks upstream."""

    def __init__(
        self,
        upstream: str,
        options: WebhooksOptions,
        secrets: dict[str, list[SecretValue]],
        metrics: WebhookMetrics,
    ) -> None:
        self.upstream = upstream
        self.options = options
        self.metrics = metrics
        self.store = Store(Path(options.store_dir) / upstream)
        self.pending: dict[str, Delivery] = {}
        self.dead: dict[str, Delivery] = {}
        self.workers = {
            name: EndpointWorker(self, name, endpoint, secrets[name])
            for name, endpoint in options.endpoints.items()
        }
        self.session: aiohttp.ClientSession
        self._tasks: list[asyncio.Task[None]] = []
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.session.close()

    async def accept(
        self, event_type: str, body: bytes, content_type: str
    ) -> tuple[str, list[str]]:
        """Queue ``body`` for every enabled endpoint subscribed to ``event_type``, durably;
        returns the message id and the endpoints. Raises QueueFull."""
        endpoints = [
            name
            for name, w in self.workers.items()
            if w.endpoint.subscribes(event_type) and not w.disabled
        ]
        if len(self.pending) + len(endpoints) > self.options.max_pending:
            raise QueueFull
        msg_id = "msg_" + uuid.uuid4().hex
        now = time.time()
        deliveries = [
            Delivery(msg_id, event_type, name, body, content_type, created=now, next_at=now)
            for name in endpoints
        ]
        await asyncio.to_thread(self.store.save, deliveries)
        for delivery in deliveries:
            self.pending[delivery.key] = delivery
            self._counted(delivery, "pending", +1)
            self.workers[delivery.endpoint].schedule(delivery)
        self.metrics.accepted.labels(self.upstream).inc()
        return msg_id, endpoints

    async def finish(self, delivery: Delivery, outcome: str, reason: str | None) -> None:
        """Delivered (the file goes) or dead (it moves to dead/, trimmed to ``max_dead``)."""
        if self.pending.pop(delivery.key, None) is not None:
            self._counted(delivery, "pending", -1)
        if outcome == "delivered":
            await asyncio.to_thread(self.store.remove, delivery)
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
                    "url": w.endpoint.url,
                    "events": list(w.endpoint.events),
                    "disabled": w.disabled,
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

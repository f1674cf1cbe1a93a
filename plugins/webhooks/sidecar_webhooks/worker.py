"""The sender of one endpoint: its due-time queue, its concurrency, its breaker, its retries.

The queue hands a worker each delivery when it is due; the worker sends at most ``concurrency``
at once, each signed afresh. A 2xx delivers, a 410 disables the endpoint, anything else (refused,
timeout, any other status) is tried again on the retry schedule until the last attempt makes
it dead. After ``breaker.failures`` failures in a row the endpoint's breaker opens: nothing is
sent to it for ``breaker.open_for``, then one delivery probes it, and its answer closes or
reopens the breaker; a delivery due while the breaker is open goes back to the queue until it
closes, using up no attempt. Keeping and accepting deliveries is the engine's and the queue's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from sidecar import SecretValue, deferred

from .config import Endpoint, RetryPolicy
from .queue import QueueDown
from .signing import secret_key, sign_headers
from .store import HISTORY, Delivery

if TYPE_CHECKING:
    import aiohttp

    from .delivery import Engine
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

log = logging.getLogger("sidecar.plugin.webhooks")
#: seconds before a delivery whose body the queue could not read is tried again
UNREADABLE_WAIT = 1.0


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
    """The sender of one endpoint: the queue hands it due deliveries (:meth:`hand`)."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        endpoint: Endpoint,
        secrets: Sequence[SecretValue],
        url_ref: SecretValue | None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.endpoint = endpoint
        #: read at each attempt: a secret file that changed is picked up without a reload
        self.secrets = secrets
        self._url = url_ref.get if url_ref is not None else (lambda: str(endpoint.url))
        #: due deliveries, bounded by what the queue hands out (its pending, or its prefetch)
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._slots = asyncio.Semaphore(endpoint.concurrency)
        self._sending: set[asyncio.Task[None]] = set()
        self._failures_in_row = 0
        #: while in the future the breaker is open; once passed, the next send is the probe
        self.open_until = 0.0
        self._fields = {"fields": {"upstream": engine.upstream, "endpoint": name}}
        self._labels = {
            outcome: engine.metrics.deliveries.labels(engine.upstream, name, outcome)
            for outcome in ("delivered", "retry", "dead", "gone")
        }

    def hand(self, delivery: Delivery) -> None:
        self._inbox.put_nowait(delivery)

    async def run(self) -> None:
        try:
            while True:
                await self._slots.acquire()
                delivery = await self._inbox.get()
                if self.open_until > time.time():
                    # the breaker is open: the delivery waits in the queue until it closes,
                    # using up no attempt (and holding no slot of this replica meanwhile)
                    delivery.next_at = self.open_until
                    await self._then_release(self.engine.queue.reschedule(delivery))
                elif self.open_until:
                    # half open: this delivery probes alone; its answer closes or reopens
                    await self._then_release(self._attempt(delivery))
                else:
                    task = asyncio.create_task(self._attempt(delivery))
                    self._sending.add(task)
                    task.add_done_callback(self._done)
        finally:
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _then_release(self, step: Awaitable[None]) -> None:
        try:
            await step
        except Exception:  # the worker goes on: one delivery's bug must not stop the endpoint
            log.exception("webhook delivery failed unexpectedly", extra=self._fields)
        finally:
            self._slots.release()

    def _passed(self, ok: bool) -> None:
        """Count one attempt's end for the breaker (a 410 is neither: it disables)."""
        breaker = self.endpoint.breaker
        if ok:
            if self.open_until:
                log.info("webhook endpoint answers again: breaker closed", extra=self._fields)
            self._failures_in_row, self.open_until = 0, 0.0
            return
        self._failures_in_row += 1
        if breaker.failures and self._failures_in_row >= breaker.failures:
            if not self.open_until:
                log.warning("webhook endpoint failing: breaker open", extra=self._fields)
            self.open_until = time.time() + breaker.open_for

    def _done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())

    async def _attempt(self, delivery: Delivery) -> None:
        queue = self.engine.queue
        if queue.is_disabled(self.name):
            self._labels["dead"].inc()
            await self.engine.finish(delivery, "dead", "the endpoint is disabled (it answered 410)")
            return
        try:
            body = await queue.body(delivery)
        except LookupError:
            self._labels["dead"].inc()
            await self.engine.finish(delivery, "dead", "its body is missing from the queue")
            return
        except QueueDown:
            delivery.next_at = time.time() + UNREADABLE_WAIT  # the queue is down: try later
            await queue.reschedule(delivery)
            return
        now = time.time()
        headers = sign_headers(
            [secret_key(s.get()) for s in self.secrets],
            delivery.msg_id,
            int(now),
            body,
            hex_form=self.endpoint.hex_signature,
        )
        headers["content-type"] = delivery.content_type
        status: int | None = None
        retry_after: float | None = None
        try:
            async with self.engine.session.post(
                self._url(),
                data=body,
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
        if status != 410:
            self._passed(error is None)
        if error is None:
            self._labels["delivered"].inc()
            await self.engine.finish(delivery, "delivered", None)
        elif status == 410:
            self._labels["gone"].inc()
            with contextlib.suppress(QueueDown):  # kept here; other replicas learn it later
                await queue.set_disabled(self.name, True)
            log.warning("webhook endpoint answered 410 Gone: disabled", extra=self._fields)
            await self.engine.finish(delivery, "dead", "the endpoint answered 410: disabled")
        elif delivery.attempts >= self.engine.options.retry.attempts:
            self._labels["dead"].inc()
            await self.engine.finish(delivery, "dead", error)
        else:
            self._labels["retry"].inc()
            delay = retry_delay(self.engine.options.retry, delivery.attempts, retry_after)
            delivery.next_at = time.time() + delay
            await queue.reschedule(delivery)

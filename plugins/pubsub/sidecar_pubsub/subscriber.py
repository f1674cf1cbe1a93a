"""A subscription's loop: read from the broker, deliver to the app, then acknowledge.

At-least-once: a message is acknowledged to the broker only after the app's answer settled it
(acknowledged, dropped, or copied to the dead-letter topic and that publish confirmed). A
sidecar that dies before that leaves the message with the broker, which gives it out again
(a restart reads its own pending ones; another member claims them after ``claim_after``).
Retries wait ``backoff`` doubled each time up to ``max_backoff``; after ``retry.attempts``
deliveries the message is dead-lettered. Up to ``concurrency`` messages are being delivered at
once, and a free slot is filled as soon as one is settled; messages with the same value of
``ordered_by`` go one after another, in the order read. :meth:`Subscription.stop` ends the loop
gracefully (a reload changed or removed the subscription): what is in flight settles and is
acknowledged first. With tracing on, each delivery is a CONSUMER span (:mod:`.spans`) under the
context the event carries. Not here: one HTTP delivery (:mod:`.delivery`), which subscriptions
run (:mod:`.running`).
"""

from __future__ import annotations

__all__ = ["Subscription", "retry_wait"]

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from sidecar import deferred

from .backend import Backend, BrokerUnavailable, Consumer, Delivery
from .config import RetryPolicy, SubscriptionConfig
from .delivery import Verdict, deliver
from .envelope import CloudEvent, complete
from .metrics import PubSubMetrics
from .tracing import LiveTracer

if TYPE_CHECKING:
    import aiohttp
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

log = logging.getLogger("sidecar.plugin.pubsub")
#: bound on one wait for messages (and so on how late a stop is noticed by a quiet broker)
RECEIVE_WAIT = 1.0
#: waits after the broker failed, doubled up to the last
BROKER_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: added to a delivery's ``timeout`` and the dead-letter publish's bound when a stopping
#: subscription waits for it to settle (its acknowledgement)
DRAIN_MARGIN = 2.0


class Subscription:
    """One configured subscription of one upstream, run by :meth:`run` until cancelled."""

    def __init__(
        self,
        upstream: str,
        config: SubscriptionConfig,
        backend: Backend,
        app_url: str,
        consumer_name: str,
        session: aiohttp.ClientSession,
        metrics: PubSubMetrics,
        tracer: LiveTracer,
        system: str,
    ) -> None:
        self.upstream = upstream
        self.config = config
        self.backend = backend
        self.url = app_url.rstrip("/") + config.path
        self.consumer_name = consumer_name
        self.session = session
        self.metrics = metrics
        self.tracer = tracer
        #: the backend's name, the spans' ``messaging.system``
        self.system = system
        labels = (upstream, config.topic, config.group)
        self._outcomes = {v: metrics.deliveries.labels(*labels, v.value) for v in Verdict}
        self._fields = {"upstream": upstream, "topic": config.topic, "group": config.group}
        self._consumer: Consumer | None = None
        #: set by :meth:`stop`: read no more, let what is in flight settle, then end
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to end gracefully: it reads no more messages, lets the deliveries in
        flight settle and be acknowledged (all within ``timeout`` + ``dead_letter_timeout`` +
        :data:`DRAIN_MARGIN`; a message waiting for a retry is left to the broker), closes its
        consumer and returns."""
        self._stopping.set()

    @property
    def drain_bound(self) -> float:
        """How long :meth:`run` may take to end after :meth:`stop` (past it, cancel it)."""
        return RECEIVE_WAIT + self.config.timeout + self.config.dead_letter_timeout + DRAIN_MARGIN

    async def _paused(self, seconds: float) -> bool:
        """Wait ``seconds``; whether :meth:`stop` was asked meanwhile (then at once)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def join(self) -> None:
        """Join the consumer group now (creating it, and binding its queue), so what the app
        publishes once the sidecar is ready has a group to go to; raises
        :class:`BrokerUnavailable` (then :meth:`run` keeps trying)."""
        self._consumer = await self.backend.consumer(
            self.config.topic, self.config.group, self.consumer_name, self.config.claim_after
        )

    async def run(self) -> None:
        consumer, self._consumer = self._consumer, None
        failures = 0
        #: deliveries being handled, by the broker's id of their message
        in_flight: dict[str, asyncio.Task[None]] = {}
        #: the last delivery of each ``ordered_by`` value, which the next one of it waits for
        tails: dict[str, asyncio.Task[None]] = {}
        try:
            while not self._stopping.is_set():
                free = self.config.concurrency - len(in_flight)
                if free <= 0:
                    # every slot is taken: read more only once a delivery is settled
                    await asyncio.wait(in_flight.values(), return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    if consumer is None:
                        consumer = await self.backend.consumer(
                            self.config.topic,
                            self.config.group,
                            self.consumer_name,
                            self.config.claim_after,
                        )
                    batch = await consumer.receive(free, RECEIVE_WAIT)
                    failures = 0
                except BrokerUnavailable as e:
                    if failures == 0:
                        log.warning(
                            f"pubsub: cannot read {self.config.topic}: {e}",
                            extra={"fields": self._fields},
                        )
                    wait = BROKER_BACKOFF[min(failures, len(BROKER_BACKOFF) - 1)]
                    failures += 1
                    if consumer is not None:
                        await consumer.aclose()
                        consumer = None
                    await self._paused(wait)  # the broker is down: wait before asking again
                    continue
                for message in batch:
                    if message.broker_id in in_flight:
                        continue  # given again while still being handled (a claim of our own)
                    key = self._order_key(message)
                    task = asyncio.create_task(self._settle(message, tails.get(key or "")))
                    in_flight[message.broker_id] = task
                    task.add_done_callback(partial(_forget, in_flight, message.broker_id))
                    if key is not None:
                        tails[key] = task
                        task.add_done_callback(partial(_forget, tails, key))
            # stopped: what is in flight settles and is acknowledged on this consumer, bounded
            if in_flight:
                settle = self.config.timeout + self.config.dead_letter_timeout + DRAIN_MARGIN
                await asyncio.wait(in_flight.values(), timeout=settle)
        finally:
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            if consumer is not None:
                await consumer.aclose()

    def _order_key(self, message: Delivery) -> str | None:
        attribute = self.config.ordered_by
        if attribute is None or message.event is None:
            return None
        value = message.event.attributes.get(attribute)
        return None if value is None else str(value)

    async def _settle(self, message: Delivery, before: asyncio.Task[None] | None) -> None:
        """Handle ``message`` once ``before`` (the previous message of its key) is done."""
        if before is not None:
            await asyncio.wait([before])
        try:
            await self.handle(message)
        except Exception as e:
            # a bug must not stop the subscription; the message stays unacknowledged, so it
            # is delivered again
            log.error(
                f"pubsub: delivery failed: {type(e).__name__}",
                exc_info=e,
                extra={"fields": self._fields},
            )

    async def handle(self, message: Delivery) -> None:
        """Deliver one message until it is settled, then acknowledge it (or leave it to the
        broker when the settling itself failed)."""
        event = message.event
        if event is None:
            if await self.dead_letter(_undecodable(message), "undecodable", "not a CloudEvent"):
                await self._ack(message)
            return
        retry = self.config.retry
        attempt = 0
        while True:
            attempt += 1
            verdict, reason = await self._deliver(event, attempt)
            self._outcomes[verdict].inc()
            if verdict is Verdict.RETRY and attempt < retry.attempts:
                if await self._paused(retry_wait(retry, attempt)):  # the retry policy's backoff
                    return  # stopping: unacknowledged, the broker gives it out again
                continue
            break
        if verdict is Verdict.RETRY:
            settled = await self.dead_letter(
                event, "exhausted", f"{reason} ({attempt} deliveries)", attempt
            )
        elif verdict is Verdict.DEADLETTER:
            settled = await self.dead_letter(event, "app", reason, attempt)
        else:
            settled = True
        if settled:
            await self._ack(message)

    async def _deliver(self, event: CloudEvent, attempt: int) -> tuple[Verdict, str]:
        """One delivery to the app, in a CONSUMER span of its own when the sidecar traces."""
        tracer = self.tracer.get()
        if tracer is None:
            return await deliver(self.session, self.url, event, attempt, self.config.timeout)
        from . import spans  # OpenTelemetry: only in a sidecar that traces

        span = spans.process_span(
            tracer,
            self.system,
            self.config.topic,
            self.config.group,
            event.id,
            event.attributes.get("traceparent"),
            attempt,
        )
        try:
            verdict, reason = await deliver(
                self.session,
                self.url,
                event,
                attempt,
                self.config.timeout,
                spans.traceparent_of(span),
            )
        except BaseException as e:  # cancelled at shutdown: the message comes again
            spans.end(span, type(e).__name__)
            raise
        span.set_attribute("sidecar.pubsub.outcome", verdict.value)
        if verdict in (Verdict.RETRY, Verdict.DEADLETTER):
            spans.end(span, verdict.value, reason)
        else:
            spans.end(span)
        return verdict, reason

    async def dead_letter(
        self, event: CloudEvent, kind: str, reason: str, attempts: int = 0
    ) -> bool:
        """Copy ``event`` to the dead-letter topic with why; whether it is settled (the copy
        confirmed, or no dead-letter topic is configured and it was counted and logged)."""
        counted = self.metrics.dead_lettered.labels(
            self.upstream, self.config.topic, self.config.group, kind
        )
        topic = self.config.dead_letter
        if topic is None:
            counted.inc()
            log.warning(
                f"pubsub: message {event.id} of {self.config.topic} given up: {reason} "
                "(no dead_letter topic configured)",
                extra={"fields": self._fields},
            )
            return True
        copy = CloudEvent(dict(event.attributes), event.data)
        copy.attributes["deadletterreason"] = reason
        copy.attributes["deadlettertopic"] = self.config.topic
        copy.attributes["deadlettergroup"] = self.config.group
        copy.attributes["deadletterattempts"] = attempts
        try:
            await self._publish(topic, copy)
        except TimeoutError:
            failure = f"the broker did not confirm within {self.config.dead_letter_timeout:.3g}s"
        except BrokerUnavailable as e:
            failure = str(e)
        else:
            counted.inc()  # once it is settled: a copy that failed is tried again later
            return True
        log.warning(
            f"pubsub: dead-lettering {event.id} failed ({failure}); left with the broker",
            extra={"fields": self._fields},
        )
        return False

    async def _publish(self, topic: str, event: CloudEvent) -> None:
        """Publish a dead-letter copy within ``dead_letter_timeout``, in a PRODUCER span of its
        own (child of the event's trace) when the sidecar traces."""
        tracer = self.tracer.get()
        if tracer is None:
            async with asyncio.timeout(self.config.dead_letter_timeout):
                await self.backend.publish(topic, event)
            return
        from . import spans  # OpenTelemetry: only in a sidecar that traces

        parent = event.attributes.get("traceparent")
        span = spans.publish_span(tracer, self.system, topic, str(parent) if parent else None)
        try:
            async with asyncio.timeout(self.config.dead_letter_timeout):
                await self.backend.publish(topic, event)
        except TimeoutError:
            spans.end(span, "timeout", "the broker did not confirm in time")
            raise
        except BrokerUnavailable as e:
            spans.end(span, "unavailable", str(e))
            raise
        except BaseException as e:  # cancelled at shutdown
            spans.end(span, type(e).__name__)
            raise
        spans.end(span)

    async def _ack(self, message: Delivery) -> None:
        try:
            await message.ack()
        except BrokerUnavailable as e:
            # not lost: the broker delivers it again (at-least-once)
            log.warning(
                f"pubsub: ack of {message.broker_id} failed ({e}); it will come again",
                extra={"fields": self._fields},
            )


def _forget(table: dict[str, asyncio.Task[None]], key: str, task: asyncio.Task[None]) -> None:
    """Drop ``table[key]`` if it is still ``task`` (a later task of the key may replace it)."""
    if table.get(key) is task:
        del table[key]


def retry_wait(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed delivery number ``attempt`` (from 1): ``backoff`` doubled
    each time, never more than ``max_backoff``."""
    return float(min(policy.max_backoff, policy.backoff * 2 ** min(attempt - 1, 30)))


def _undecodable(message: Delivery) -> CloudEvent:
    """A new event carrying what the broker held, for the dead-letter topic."""
    event = CloudEvent(
        {
            "datacontenttype": "application/octet-stream",
            "brokerid": message.broker_id,
        },
        message.raw,
    )
    return complete(event, source="sidecar-pubsub", type_="sidecar.pubsub.undecodable")

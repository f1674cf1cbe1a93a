"""Kafka as a pub/sub backend: produce with ``acks=all``, consume in a group, commit in order.

Events are stored in structured mode (``content-type: application/cloudevents+json`` header,
which the Kafka binding allows), keyed by the event's ``partitionkey`` attribute when it has
one, so events of one key stay in order on one partition. A publish returns once the broker
acknowledged it with ``acks=all``. Topics are created on first use when ``create_topics`` is on.

Kafka acknowledges by committing an offset, which covers every message before it on that
partition. So a message's ack commits only up to the first message of its partition that is
not settled yet: a message still being delivered is never committed past. A member that dies
leaves its partitions, from the last committed offset, to the next member the group assigns
them to: Kafka's own claim. Not here: the delivery loop.
"""

from __future__ import annotations

__all__ = ["KafkaBackend"]

import asyncio
from typing import Any

# aiokafka ships no type hints
from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError, TopicAlreadyExistsError  # type: ignore[import-untyped]
from pydantic import Field

from sidecar import Duration, Model

from ..backend import Backend, BrokerUnavailable, Consumer, Delivery
from ..envelope import STRUCTURED, CloudEvent, EnvelopeError, from_structured, to_structured

KAFKA_ERRORS = (KafkaError, OSError)
HEADERS = [("content-type", STRUCTURED.encode())]


class KafkaOptions(Model):
    """``options.backend`` keys of a ``kafka`` backend (no SASL yet)."""

    #: create a topic on first use (``partitions``, ``replication_factor``)
    create_topics: bool = True
    partitions: int = Field(default=1, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    #: bound on one request to the broker (a group join waits for the group's rebalance)
    request_timeout: Duration = Field(default=40.0, gt=0, le=300)
    #: a member not heard from this long is dead; its partitions go to the others
    session_timeout: Duration = Field(default=10.0, ge=1, le=300)


def _broker_error(e: BaseException) -> BrokerUnavailable:
    return BrokerUnavailable(f"kafka: {type(e).__name__}")


class KafkaBackend(Backend):
    options_model = KafkaOptions
    url_schemes = ("kafka",)

    def __init__(self, url: str, options: Any) -> None:
        super().__init__(url, options)
        assert isinstance(options, KafkaOptions)
        self.settings = options
        # kafka://host:port[,host:port...]: the bootstrap servers
        self.bootstrap = url.split("://", 1)[1].strip("/")
        self._producer: AIOKafkaProducer | None = None
        self._created: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure_topic(self, topic: str) -> None:
        if not self.settings.create_topics or topic in self._created:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            request_timeout_ms=int(self.settings.request_timeout * 1000),
        )
        await admin.start()
        try:
            new = NewTopic(topic, self.settings.partitions, self.settings.replication_factor)
            await admin.create_topics([new])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()
        self._created.add(topic)

    async def publish(self, topic: str, event: CloudEvent) -> None:
        key = event.attributes.get("partitionkey")
        try:
            async with self._lock:
                await self.ensure_topic(topic)
                if self._producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        acks="all",
                        request_timeout_ms=int(self.settings.request_timeout * 1000),
                    )
                    await producer.start()
                    self._producer = producer
                producer = self._producer
            await producer.send_and_wait(
                topic,
                to_structured(event),
                key=None if key is None else str(key).encode(),
                headers=HEADERS,
            )
        except KAFKA_ERRORS as e:
            raise _broker_error(e) from None

    async def consumer(self, topic: str, group: str, name: str, claim_after: float) -> Consumer:
        # claim_after does not apply: the group's session timeout decides when a member is dead
        try:
            await self.ensure_topic(topic)
        except KAFKA_ERRORS as e:
            raise _broker_error(e) from None
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(self.settings.request_timeout * 1000),
            session_timeout_ms=int(self.settings.session_timeout * 1000),
            # a third of the session, as Kafka advises: three heartbeats lost make a member dead
            heartbeat_interval_ms=int(self.settings.session_timeout * 1000 / 3),
        )
        try:
            await consumer.start()
        except BaseException as e:
            await consumer.stop()  # a start cut short (cancelled, refused) leaves nothing open
            if isinstance(e, KAFKA_ERRORS):
                raise _broker_error(e) from None
            raise
        return _GroupConsumer(consumer)

    def describe(self) -> dict[str, Any]:
        return {"backend": "kafka"}

    async def aclose(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class _Partition:
    """What is delivered and not yet settled on one partition, and what was committed."""

    def __init__(self) -> None:
        self.outstanding: set[int] = set()
        self.highest_settled = -1
        self.committed = -1


class _Record(Delivery):
    def __init__(self, owner: _GroupConsumer, record: ConsumerRecord[bytes, bytes]) -> None:
        self._owner = owner
        self._tp = TopicPartition(record.topic, record.partition)
        self._offset = record.offset
        self.raw = record.value or b""
        self.broker_id = f"{record.partition}:{record.offset}"
        try:
            self.event = from_structured(self.raw)
        except EnvelopeError:
            self.event = None

    async def ack(self) -> None:
        await self._owner.settle(self._tp, self._offset)


class _GroupConsumer(Consumer):
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.partitions: dict[TopicPartition, _Partition] = {}

    async def receive(self, max_count: int, wait: float) -> list[Delivery]:
        try:
            batches = await self.consumer.getmany(
                timeout_ms=int(wait * 1000), max_records=max_count
            )
        except KAFKA_ERRORS as e:
            raise _broker_error(e) from None
        got: list[Delivery] = []
        for tp, records in batches.items():
            state = self.partitions.setdefault(tp, _Partition())
            for record in records:
                state.outstanding.add(record.offset)
                got.append(_Record(self, record))
        return got

    async def settle(self, tp: TopicPartition, offset: int) -> None:
        """Mark ``offset`` settled and commit up to the first unsettled message."""
        state = self.partitions[tp]
        state.outstanding.discard(offset)
        state.highest_settled = max(state.highest_settled, offset)
        upto = min(state.outstanding) if state.outstanding else state.highest_settled + 1
        if upto <= state.committed:
            return
        try:
            await self.consumer.commit({tp: upto})
        except KAFKA_ERRORS as e:
            raise _broker_error(e) from None
        state.committed = upto

    async def aclose(self) -> None:
        try:
            await self.consumer.stop()
        except KAFKA_ERRORS:
            pass  # uncommitted messages go to the next member from the last commit

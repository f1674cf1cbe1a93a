"""Kafka acknowledges by offset, which covers every earlier message of the partition: the
backend commits only up to the first message not yet settled (no sockets)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from sidecar_pubsub.backends.kafka import _GroupConsumer


class Record:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = "orders", 0, offset
        self.value = b"{}"


class FakeKafkaConsumer:
    """Hands out one batch and records the commits asked of it."""

    def __init__(self, offsets: list[int]) -> None:
        self.batch = {TopicPartition("orders", 0): [Record(o) for o in offsets]}
        self.commits: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        batch, self.batch = self.batch, {}
        return batch

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.extend(offsets.values())


async def test_a_settled_message_is_never_committed_past_an_unsettled_one() -> None:
    """Settling 12, 11, then 10 commits nothing until 10 is done, then everything at once."""
    fake = FakeKafkaConsumer([10, 11, 12])
    consumer = _GroupConsumer(fake)
    m10, m11, m12 = await consumer.receive(3, 0.1)
    await m12.ack()
    await m11.ack()
    assert fake.commits == [10]  # 10 is still being delivered: nothing past it
    await m10.ack()
    assert fake.commits == [10, 13]


async def test_in_order_settling_commits_after_each_message() -> None:
    """Messages settled in order are committed one after another."""
    fake = FakeKafkaConsumer([0, 1])
    consumer = _GroupConsumer(fake)
    m0, m1 = await consumer.receive(2, 0.1)
    await m0.ack()
    await m1.ack()
    assert fake.commits == [1, 2]

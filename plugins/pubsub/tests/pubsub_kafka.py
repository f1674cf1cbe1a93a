"""What the Kafka tests share: the config of an upstream on a test's own topic, and a look
into a topic and a group's commits as a second client sees them."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pubsub_brokers import TansuBroker


def kafka_config(
    broker: TansuBroker, topic: str, app_url: str | None = None, **subscription: Any
) -> dict[str, Any]:
    """One kafka upstream ``events`` with topics ``<topic>``/``<topic>.dlq``; with ``app_url``,
    a subscription of ``<topic>`` by group :func:`group_of` delivered to ``<app>/in``, fast
    retries."""
    options: dict[str, Any] = {"topics": [topic, f"{topic}.dlq"]}
    config: dict[str, Any] = {
        "upstreams": {"events": {"adapter": "pubsub", "url": broker.url, "options": options}}
    }
    if app_url is not None:
        options["subscriptions"] = [
            {
                "topic": topic,
                "group": group_of(topic),
                "path": "/in",
                "dead_letter": f"{topic}.dlq",
                "retry": {"attempts": 2, "backoff": "10ms", "max_backoff": "20ms"},
                **subscription,
            }
        ]
        config["plugins"] = {"pubsub": {"app": app_url, "consumer": "sidecar-1"}}
    return config


def group_of(topic: str) -> str:
    """The test's own consumer group: a group shared by tests would make each join wait for
    the rebalance of members an earlier test left behind."""
    return f"shop.{topic}"


def a_topic() -> str:
    return f"t{uuid.uuid4().hex[:8]}.orders"


#: how long read_all reads on for records the end offsets say are there
READ_BOUND = 15.0


async def read_all(broker: TansuBroker, topic: str) -> list[Any]:
    """Every record of ``topic``, from all its partitions, read from the start without a group;
    none while the topic does not exist.

    A consumer that asks the broker about a topic it lacks makes Tansu create it, with four
    partitions: a probe polling for a dead-letter topic before the sidecar created it (with one)
    would then leave the dead letter in any of four partitions. So the topic is first looked for
    among those the broker lists, which creates nothing, and all its partitions are read.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not tps:  # listed before its partitions are
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = sum((await consumer.end_offsets(tps)).values())
        records: list[Any] = []
        # a fetch may come back empty while records remain (a loaded machine, the first fetch
        # especially): read on until they are all here or the bound passes
        deadline = time.monotonic() + READ_BOUND
        while len(records) < end and time.monotonic() < deadline:
            batch = await consumer.getmany(*tps, timeout_ms=1000)
            for part in batch.values():
                records.extend(part)
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        await consumer.stop()


async def uncommitted(broker: TansuBroker, topic: str, partitions: int) -> int:
    """Records of ``topic`` past what its group committed, over its ``partitions``, as the
    broker says (a partition with no commit counts from its start)."""
    admin = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group_of(topic))
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await admin.end_offsets(tps)
        return sum([ends[tp] - (await admin.committed(tp) or 0) for tp in tps])
    finally:
        await admin.stop()

"""Review of the Kafka tests' probe (``read_all`` in ``pubsub_kafka.py``) against Tansu: it
reads every record of every partition, creates no topic it looks for, and a fetch that comes
back empty while records remain (a busy machine) does not cut the read short. The Kafka
tests' verdicts (every confirmed publish stored, the dead letter there) rest on it."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pubsub_brokers import TansuBroker
from pubsub_kafka import a_topic, read_all
from sidecar_pubsub.backends.kafka import KafkaBackend, KafkaOptions
from sidecar_pubsub.envelope import CloudEvent

PARTITIONS = 3
RECORDS = 12


async def _topics(broker: TansuBroker) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def _filled(broker: TansuBroker) -> str:
    topic = a_topic()
    kafka = KafkaBackend(broker.url, KafkaOptions(partitions=PARTITIONS))
    try:
        for n in range(RECORDS):
            attributes = {
                "id": f"e{n}",
                "source": "probe-test",
                "type": "t",
                "specversion": "1.0",
                "partitionkey": f"key-{n}",
            }
            await kafka.publish(topic, CloudEvent(attributes, None))
    finally:
        await kafka.aclose()
    return topic


async def test_a_missing_topic_reads_empty_and_is_not_created(kafka_broker: TansuBroker) -> None:
    """Asking for a topic nobody created yet returns no records and leaves it uncreated."""
    topic = a_topic()
    assert await read_all(kafka_broker, topic) == []
    assert topic not in await _topics(kafka_broker)


async def test_every_partitions_records_are_read(kafka_broker: TansuBroker) -> None:
    """Records spread over several partitions by key are all read, each once."""
    topic = await _filled(kafka_broker)
    records = await read_all(kafka_broker, topic)
    assert len(records) == RECORDS
    assert len({(r.partition, r.offset) for r in records}) == RECORDS
    assert len({r.partition for r in records}) > 1  # the keys did spread


async def test_an_empty_fetch_does_not_cut_the_read_short(
    kafka_broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch that returns nothing within its wait (as on a loaded machine, the first one
    especially) while records remain: the probe reads on and still returns them all."""
    topic = await _filled(kafka_broker)
    real = AIOKafkaConsumer.getmany
    calls = [0]

    async def slow_first(self: AIOKafkaConsumer, *tps: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            return {}  # what getmany gives when its timeout_ms passed with nothing fetched
        return await real(self, *tps, **kw)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", slow_first)
    assert len(await read_all(kafka_broker, topic)) == RECORDS

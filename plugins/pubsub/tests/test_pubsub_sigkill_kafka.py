"""Nothing lost when the sidecar is SIGKILLed (Kafka, against Tansu): every publish it
confirmed is in the topic, and every message reaches the app at least once after a restart,
with every offset committed and exactly the poison messages dead-lettered."""

from __future__ import annotations

import json

from pubsub_brokers import TansuBroker
from pubsub_kafka import a_topic, kafka_config, read_all, uncommitted
from pubsub_sigkill import MidBatchKill, batch, confirmed_before_sigkill
from sidecar_pubsub.backends.kafka import KafkaBackend, KafkaOptions
from sidecar_pubsub.envelope import CloudEvent

PARTITIONS = 3


async def test_every_confirmed_publish_is_in_the_topic_after_a_sigkill(
    kafka_broker: TansuBroker,
) -> None:
    """Publishers racing a SIGKILL: each 204 they got (acks=all) is a record of the topic."""
    topic = a_topic()
    confirmed = await confirmed_before_sigkill(kafka_config(kafka_broker, topic), topic)
    stored = {json.loads(r.value)["id"] for r in await read_all(kafka_broker, topic)}
    assert set(confirmed) <= stored


async def test_every_message_reaches_the_app_after_a_sigkill_mid_batch(
    kafka_broker: TansuBroker,
) -> None:
    """Killed with deliveries in flight and restarted, the sidecar delivers every message at
    least once (those in flight again), commits every offset, and only the poison messages
    are dead-lettered."""
    topic = a_topic()
    # spread over three partitions: each is committed on its own
    kafka = KafkaBackend(kafka_broker.url, KafkaOptions(partitions=PARTITIONS))
    try:
        for attributes in batch():
            await kafka.publish(topic, CloudEvent(attributes, None))
    finally:
        await kafka.aclose()

    async def all_committed() -> bool:
        return await uncommitted(kafka_broker, topic, PARTITIONS) == 0

    async def dead_lettered() -> set[str]:
        return {json.loads(r.value)["id"] for r in await read_all(kafka_broker, f"{topic}.dlq")}

    async with MidBatchKill() as run:
        config = kafka_config(kafka_broker, topic, run.app_url, concurrency=4)
        # the killed member is dead to the group after 2 s (not the default 10 s)
        config["upstreams"]["events"]["options"]["backend"] = {"session_timeout": "2s"}
        await run.start(config)
        await run.kill_while_held()
        await run.start(config)
        await run.until_every_message_delivered()
        await run.until_settled(all_committed, "every offset committed")
        await run.check_dead_letters(dead_lettered)
        await run.stop()  # leaves the group, which the next test's sidecar joins
    run.check_held_delivered_again()

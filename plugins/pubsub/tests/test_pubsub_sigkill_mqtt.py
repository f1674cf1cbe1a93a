"""Nothing lost when the sidecar is SIGKILLed (MQTT 5): every publish it confirmed reaches a
subscriber, and every message reaches the app at least once after a restart, with nothing
left unacknowledged in the consumer's session and exactly the poison messages dead-lettered."""

from __future__ import annotations

from typing import Any

from pubsub_app import until
from pubsub_brokers import MosquittoBroker
from pubsub_mqtt import Listener, a_topic, mqtt_config
from pubsub_sigkill import WAIT, MidBatchKill, batch, confirmed_before_sigkill, sentinel
from sidecar_pubsub.backends.mqtt import MQTTBackend, MQTTOptions
from sidecar_pubsub.envelope import CloudEvent


def event(attributes: dict[str, Any]) -> CloudEvent:
    return CloudEvent(dict(attributes), None)


async def test_every_confirmed_publish_reaches_a_subscriber_after_a_sigkill(
    mosquitto_broker: MosquittoBroker,
) -> None:
    """Publishers racing a SIGKILL: each 204 they got (a PUBACK) reaches a QoS 1 subscriber."""
    topic = a_topic()
    async with Listener(mosquitto_broker, topic) as listener:
        confirmed = await confirmed_before_sigkill(mqtt_config(mosquitto_broker, topic), topic)
        await until(
            lambda: set(confirmed) <= {e["id"] for e in listener.got},
            "every confirmed publish at the subscriber",
            WAIT,
        )


async def test_every_message_reaches_the_app_after_a_sigkill_mid_batch(
    mosquitto_broker: MosquittoBroker,
) -> None:
    """Killed with deliveries in flight and restarted under the same consumer name, the
    sidecar delivers every message at least once (those in flight again), its session keeps
    nothing unacknowledged, and only the poison messages are dead-lettered."""
    topic = a_topic()
    mqtt = MQTTBackend(mosquitto_broker.url, MQTTOptions())
    try:
        async with Listener(mosquitto_broker, f"{topic}.dlq") as dlq, MidBatchKill() as run:
            await run.start(mqtt_config(mosquitto_broker, topic, run.app_url, concurrency=4))
            # published once the group's shared subscription exists (MQTT keeps no message
            # for a topic nobody subscribed to)
            for attributes in batch():
                await mqtt.publish(topic, event(attributes))
            await run.kill_while_held()
            await run.start(mqtt_config(mosquitto_broker, topic, run.app_url, concurrency=1))
            await mqtt.publish(topic, event(sentinel("s1")))
            await run.until_every_message_delivered(extra=frozenset({"s1"}))

            async def dead_lettered() -> set[str]:
                return {e["id"] for e in dlq.got}

            await run.check_dead_letters(dead_lettered)
            await run.stop()
        run.check_held_delivered_again()
        # the session comes back under the sidecar's client id: the broker sends first what it
        # holds unacknowledged, then what came since (s2); only the sentinels may be there
        session = await mqtt.consumer(topic, "shop", "sidecar-1", 30.0)
        try:
            await mqtt.publish(topic, event(sentinel("s2")))
            left: list[str] = []
            while "s2" not in left:
                got = await session.receive(64, WAIT)
                assert got, "the session resumed without the sentinel"
                left += [d.event.id for d in got if d.event is not None]
        finally:
            await session.aclose()
        assert set(left) <= {"s1", "s2"}  # nothing of the batch was left unacknowledged
    finally:
        await mqtt.aclose()

"""MQTT 5 through a real sidecar and a real mosquitto: QoS 1 publishes confirmed by PUBACK,
deliveries acknowledged after the app's answer, and a message a dead session held sent again
when that consumer comes back."""

from __future__ import annotations

from typing import Any

import httpx
import sidecar_pubsub
from aiohttp import web
from pubsub_app import until
from pubsub_brokers import MosquittoBroker
from pubsub_mqtt import Listener, a_topic, mqtt_config
from sidecar_pubsub.backends.mqtt import MQTTBackend, MQTTOptions
from sidecar_pubsub.envelope import CloudEvent

from sidecar.testing import FakeUpstream


async def test_publish_is_204_once_the_broker_acked_it(
    mosquitto_broker: MosquittoBroker, sidecar_factory: Any
) -> None:
    """A QoS 1 publish answered 204 reaches an MQTT subscriber as a structured CloudEvent."""
    topic = a_topic()
    async with Listener(mosquitto_broker, topic) as listener:
        config = mqtt_config(mosquitto_broker, topic)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    f"http://127.0.0.1:{s.http_port}/events/{topic}",
                    content=b'{"n":3}',
                    headers={"content-type": "application/json"},
                )
            assert r.status_code == 204, r.text
            await until(lambda: len(listener.got) == 1, "the subscriber got it")
    assert listener.got[0]["id"] == r.headers["ce-id"]
    assert listener.got[0]["data"] == {"n": 3}


async def test_deliveries_are_acked_after_the_app_and_poison_is_dead_lettered(
    mosquitto_broker: MosquittoBroker, sidecar_factory: Any
) -> None:
    """The subscription delivers to the app; a message it keeps failing goes to the DLQ topic."""
    topic = a_topic()

    async def decide(request: web.Request) -> web.Response:
        return web.Response(status=500 if request.headers["ce-type"] == "poison" else 200)

    async with Listener(mosquitto_broker, f"{topic}.dlq") as dlq, FakeUpstream(decide) as app:
        config = mqtt_config(mosquitto_broker, topic, app.url)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{s.http_port}/events/{topic}"
                ok = await client.post(base, content=b"a", headers={"ce-type": "fine"})
                bad = await client.post(base, content=b"b", headers={"ce-type": "poison"})
            assert (ok.status_code, bad.status_code) == (204, 204)
            await until(lambda: len(dlq.got) == 1, "the dead letter")
            await until(lambda: len(app.requests) == 3, "three deliveries")
    assert dlq.got[0]["id"] == bad.headers["ce-id"]
    assert dlq.got[0]["deadletterreason"] == "the app answered 500 (2 deliveries)"


async def test_a_message_a_dead_session_held_is_delivered_when_it_comes_back(
    mosquitto_broker: MosquittoBroker, sidecar_factory: Any
) -> None:
    """A consumer that took a message and vanished before acking gets it again on return."""
    topic = a_topic()
    mqtt = MQTTBackend(mosquitto_broker.url, MQTTOptions())
    consumer = await mqtt.consumer(topic, "shop", "sidecar-1", 30.0)
    event = CloudEvent({"specversion": "1.0", "id": "held-1", "source": "/s", "type": "t"}, b"x")
    await mqtt.publish(topic, event)
    [held] = await consumer.receive(1, 10.0)
    assert held.event is not None and held.event.id == "held-1"
    await consumer.aclose()  # gone without acknowledging: the session keeps the message
    await mqtt.aclose()
    async with FakeUpstream() as app:
        async with sidecar_factory(
            mqtt_config(mosquitto_broker, topic, app.url), plugins=[sidecar_pubsub]
        ):
            await until(lambda: len(app.requests) == 1, "the held message delivered")
    assert app.requests[0].headers["ce-id"] == "held-1"

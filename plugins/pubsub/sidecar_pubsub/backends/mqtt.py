"""MQTT 5 as a pub/sub backend: QoS 1, shared subscriptions, persistent sessions.

A topic is an MQTT topic; a consumer group is a shared subscription ``$share/<group>/<topic>``,
so the group's members share the messages. Payloads are the event in structured mode (the one
mode both MQTT 3.1.1 and 5 bindings have), with the MQTT 5 content type
``application/cloudevents+json``. A publish is QoS 1 and confirmed by the broker's PUBACK.
A consumer's session is persistent (clean start never, ``session_expiry``) and acknowledges
each message (PUBACK) only when the delivery loop says so, so a message the sidecar died
holding is sent again when a consumer of the same name reconnects. Unlike Redis or RabbitMQ,
MQTT does not hand a dead member's unacknowledged messages to another member: they wait for
that member's session to come back (or expire). Not here: the delivery loop.
"""

from __future__ import annotations

__all__ = ["MQTTBackend"]

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field

from sidecar import Duration, Model, SecretRef, SecretValue

from ..backend import Backend, BrokerUnavailable, Consumer, Delivery
from ..envelope import STRUCTURED, CloudEvent, EnvelopeError, from_structured, to_structured

#: what a failed MQTT call raises
MQTT_ERRORS = (aiomqtt.MqttError, OSError)


#: publishes waiting for their PUBACK past which aiomqtt logs a warning (its default is 10)
PUBLISHES_IN_FLIGHT_WARNING = 1000


class MQTTOptions(Model):
    """``options.backend`` keys of an ``mqtt`` backend."""

    username: str | None = Field(default=None, max_length=200)
    #: by reference (``{env: NAME}`` or ``{file: PATH}``)
    password: SecretRef | None = None
    connect_timeout: Duration = Field(default=5.0, gt=0, le=60)
    #: how long the broker keeps a consumer's session (and its unacknowledged messages) after
    #: it disconnected
    session_expiry: Duration = Field(default=3600.0, gt=0, le=7 * 86400)
    #: messages a consumer takes from the broker before acknowledging (MQTT receive maximum)
    receive_maximum: int = Field(default=64, ge=1, le=65535)


def _broker_error(e: BaseException) -> BrokerUnavailable:
    return BrokerUnavailable(f"mqtt: {type(e).__name__}")


class MQTTBackend(Backend):
    options_model = MQTTOptions
    url_schemes = ("mqtt",)

    def __init__(self, url: str, options: Any) -> None:
        super().__init__(url, options)
        assert isinstance(options, MQTTOptions)
        self.settings = options
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.password: str | None = None
        if options.password is not None:
            self.password = SecretValue(options.password, "options.backend.password").get()
        self._publisher: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    def client(self, identifier: str | None = None, **kwargs: Any) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=identifier,
            username=self.settings.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=self.settings.connect_timeout,
            **kwargs,
        )

    async def _connected_publisher(self) -> aiomqtt.Client:
        async with self._lock:
            if self._publisher is None:
                client = self.client()
                # one publish in flight per app call being answered (bounded by the listener's
                # limits): aiomqtt's warning past 10 would fill the log under ordinary load
                client.pending_calls_threshold = PUBLISHES_IN_FLIGHT_WARNING
                await client.__aenter__()
                self._publisher = client
            return self._publisher

    async def publish(self, topic: str, event: CloudEvent) -> None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ContentType = STRUCTURED
        try:
            client = await self._connected_publisher()
            # QoS 1: returns once the broker's PUBACK came back
            await client.publish(topic, to_structured(event), qos=1, properties=properties)
        except MQTT_ERRORS as e:
            await self._drop_publisher()
            raise _broker_error(e) from None

    async def _drop_publisher(self) -> None:
        async with self._lock:
            client, self._publisher = self._publisher, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except MQTT_ERRORS:
                pass  # already gone

    async def consumer(self, topic: str, group: str, name: str, claim_after: float) -> Consumer:
        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.SessionExpiryInterval = int(self.settings.session_expiry)
        connect.ReceiveMaximum = self.settings.receive_maximum
        client = self.client(
            f"{name}.{group}.{topic}"[:200],
            clean_start=False,
            properties=connect,
        )
        # acknowledge each message only once the app's answer settled it (paho's manual ack;
        # aiomqtt does not expose it)
        client._client.manual_ack_set(True)  # noqa: SLF001
        try:
            await client.__aenter__()
            await client.subscribe(f"$share/{group}/{topic}", qos=1)
        except MQTT_ERRORS as e:
            raise _broker_error(e) from None
        return _SessionConsumer(client)

    def describe(self) -> dict[str, Any]:
        return {"backend": "mqtt"}

    async def aclose(self) -> None:
        await self._drop_publisher()


class _Message(Delivery):
    def __init__(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        self._client = client
        self._mid = message.mid
        self._qos = message.qos
        payload = message.payload
        self.raw = payload if isinstance(payload, bytes) else str(payload).encode()
        self.broker_id = str(message.mid)
        try:
            self.event = from_structured(self.raw)
        except EnvelopeError:
            self.event = None

    async def ack(self) -> None:
        self._client._client.ack(self._mid, self._qos)  # noqa: SLF001 - paho's PUBACK


class _SessionConsumer(Consumer):
    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages = client.messages

    async def receive(self, max_count: int, wait: float) -> list[Delivery]:
        try:
            first = await asyncio.wait_for(anext(self.messages), wait)
        except TimeoutError:
            return []
        except MQTT_ERRORS as e:
            raise _broker_error(e) from None
        got: list[Delivery] = [_Message(self.client, first)]
        while len(got) < max_count and len(self.messages) > 0:
            got.append(_Message(self.client, await anext(self.messages)))
        return got

    async def aclose(self) -> None:
        try:
            await self.client.__aexit__(None, None, None)
        except MQTT_ERRORS:
            pass  # already disconnected: the session keeps what was not acknowledged

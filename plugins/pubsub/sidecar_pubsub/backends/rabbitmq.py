"""RabbitMQ as a pub/sub backend: a durable topic exchange, one durable queue per group.

A topic is a routing key on the exchange (``exchange``, type ``topic``); a consumer group is a
durable queue ``<topic>.<group>`` bound to it, so each group gets every message and the members
of a group share them. Messages are persistent and in structured mode
(``content-type: application/cloudevents+json``, which the AMQP binding allows). A publish is
confirmed by the broker's publisher confirm; it is ``mandatory``, so a message no queue is bound
for is refused (the app gets 503) rather than confirmed and dropped. A member that dies leaves its
unacknowledged messages to the broker, which gives them to another member: RabbitMQ's own claim.
Not here: the delivery loop.
"""

from __future__ import annotations

__all__ = ["RabbitMQBackend"]

import asyncio
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import Field
from yarl import URL

from sidecar import Duration, Model, SecretRef, SecretValue

from ..backend import Backend, BrokerUnavailable, Consumer, Delivery
from ..envelope import STRUCTURED, CloudEvent, EnvelopeError, from_structured, to_structured

#: what a failed AMQP call raises: aio-pika's and aiormq's errors, and the socket's
AMQP_ERRORS = (aio_pika.exceptions.AMQPException, aiormq.exceptions.AMQPError, OSError)


class RabbitMQOptions(Model):
    """``options.backend`` keys of a ``rabbitmq`` backend."""

    username: str = Field(default="guest", max_length=200)
    #: by reference (``{env: NAME}`` or ``{file: PATH}``); RabbitMQ's own default without one
    password: SecretRef | None = None
    exchange: str = Field(default="sidecar", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    connect_timeout: Duration = Field(default=5.0, gt=0, le=60)


def _broker_error(e: BaseException) -> BrokerUnavailable:
    if isinstance(e, aiormq.exceptions.PublishError):
        return BrokerUnavailable("rabbitmq: no queue is bound for the topic (message returned)")
    # the class name only: a message can echo the url, which holds the credentials
    return BrokerUnavailable(f"rabbitmq: {type(e).__name__}")


class RabbitMQBackend(Backend):
    options_model = RabbitMQOptions
    url_schemes = ("amqp", "amqps")

    def __init__(self, url: str, options: Any) -> None:
        super().__init__(url, options)
        assert isinstance(options, RabbitMQOptions)
        self.settings = options
        password = "guest"  # noqa: S105 - RabbitMQ's own default account
        if options.password is not None:
            password = SecretValue(options.password, "options.backend.password").get()
        self._url = URL(url).with_user(options.username).with_password(password)
        self._connection: AbstractConnection | None = None
        self._publisher: AbstractChannel | None = None
        #: the exchange as declared on the publisher channel: once per channel, not per publish
        self._publish_to: aio_pika.abc.AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(
                self._url, timeout=self.settings.connect_timeout
            )
            self._publisher = None
        return self._connection

    async def _exchange(self, channel: AbstractChannel) -> aio_pika.abc.AbstractExchange:
        return await channel.declare_exchange(
            self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def publish(self, topic: str, event: CloudEvent) -> None:
        try:
            async with self._lock:  # one connection, channel and declare, made once
                connection = await self._connect()
                exchange = self._publish_to
                if self._publisher is None or self._publisher.is_closed or exchange is None:
                    self._publish_to = None
                    self._publisher = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    exchange = self._publish_to = await self._exchange(self._publisher)
            message = aio_pika.Message(
                to_structured(event),
                content_type=STRUCTURED,
                message_id=event.id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=topic, mandatory=True)
        except AMQP_ERRORS as e:
            raise _broker_error(e) from None

    async def consumer(self, topic: str, group: str, name: str, claim_after: float) -> Consumer:
        try:
            async with self._lock:
                connection = await self._connect()
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=64)
            exchange = await self._exchange(channel)
            queue = await channel.declare_queue(f"{topic}.{group}", durable=True)
            await queue.bind(exchange, routing_key=topic)
            consumer = _QueueConsumer(channel)
            await queue.consume(consumer.arrived, consumer_tag=f"{name}.{topic}.{group}")
        except AMQP_ERRORS as e:
            raise _broker_error(e) from None
        return consumer

    def describe(self) -> dict[str, Any]:
        return {"backend": "rabbitmq", "exchange": self.settings.exchange}

    async def aclose(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()


class _Message(Delivery):
    def __init__(self, message: AbstractIncomingMessage) -> None:
        self._message = message
        self.raw = message.body
        self.broker_id = str(message.delivery_tag)
        try:
            self.event = from_structured(message.body)
        except EnvelopeError:
            self.event = None

    async def ack(self) -> None:
        try:
            await self._message.ack()
        except AMQP_ERRORS as e:
            raise _broker_error(e) from None


class _QueueConsumer(Consumer):
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        # bounded by the channel's prefetch: the broker sends no more unacknowledged messages
        self.arrivals: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def arrived(self, message: AbstractIncomingMessage) -> None:
        await self.arrivals.put(message)

    async def receive(self, max_count: int, wait: float) -> list[Delivery]:
        if self.channel.is_closed:
            raise BrokerUnavailable("rabbitmq: the consumer's channel closed")
        try:
            first = await asyncio.wait_for(self.arrivals.get(), wait)
        except TimeoutError:
            return []
        got: list[Delivery] = [_Message(first)]
        while len(got) < max_count and not self.arrivals.empty():
            got.append(_Message(self.arrivals.get_nowait()))
        return got

    async def aclose(self) -> None:
        if not self.channel.is_closed:
            try:
                await self.channel.close()
            except AMQP_ERRORS:
                pass  # the connection went first: the broker requeues what was unacknowledged
